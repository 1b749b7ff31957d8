package protocol

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// An entry is what a Store knows of one record; immutable once published.
type entry struct {
	ok      bool                    // auth holds the record's value
	auth    sessionstore.AuthObject // the value, owned by the cache
	ver     int64                   // the version of the record's last change this Store knows of
	seq     uint64
	written time.Time // when the record was written
	maxSeq  uint64    // the highest sequence number seen, for sessionstore.ErrRollback
	gen     uint64    // the feed generation that vouches for it
}

// watchState is the health of the Store's change feed (the staleness
// rule: docs/ARCHITECTURE.md). An entry is served only while its
// generation is serving: a Get reads one atomic word and no clock. A timer
// clears serving staleMargin before the deadline, so that a timer late by
// less than that still keeps the bound.
type watchState struct {
	gen      atomic.Uint64 // the current generation; changed under the cache's lock
	deadline atomic.Int64  // serve cached values until then (mono); 0: don't
	serving  atomic.Uint64 // gen while the deadline, less staleMargin, is ahead; else 0; changed under mu
	cancel   atomic.Pointer[context.CancelFunc]

	mu    sync.Mutex  // guards timer; orders changes of deadline and serving
	timer *time.Timer // clears serving at the deadline, less staleMargin
}

// staleMargin is how long before its deadline the cache stops being
// served: a tenth of the bound, at most 50 ms.
func (s *Store) staleMargin() int64 {
	return int64(min(s.maxStaleness/10, 50*time.Millisecond))
}

// vouches reports whether a cached entry of generation gen may be served.
func (w *watchState) vouches(gen uint64) bool {
	return gen != 0 && gen == w.serving.Load()
}

// Watching reports whether the Store serves values from its cache now.
func (s *Store) Watching() bool { return s.watch.serving.Load() != 0 }

// RestartFeed ends s's feed's generation, as a failure would (tests).
func RestartFeed(s *Store) {
	if c := s.watch.cancel.Load(); c != nil {
		(*c)()
	}
}

// setDeadline makes cached values servable until deadline (mono; 0: not
// at all).
func (s *Store) setDeadline(deadline int64) {
	w := &s.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline.Store(deadline)
	until := deadline - s.staleMargin() - s.mono()
	if deadline == 0 || until <= 0 || s.closed.Load() {
		w.serving.Store(0)
		if w.timer != nil {
			w.timer.Stop()
		}
		return
	}
	w.serving.Store(w.gen.Load())
	if w.timer == nil {
		w.timer = time.AfterFunc(time.Duration(until), s.checkDeadline)
	} else {
		w.timer.Reset(time.Duration(until))
	}
}

// checkDeadline is the timer's: it clears serving once the deadline, less
// staleMargin, has come, else waits again.
func (s *Store) checkDeadline() {
	w := &s.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	until := w.deadline.Load() - s.staleMargin() - s.mono()
	if until <= 0 {
		w.serving.Store(0)
		return
	}
	w.timer.Reset(time.Duration(until))
}

// watchLoop runs the change feed until Close, restarting it (after a
// growing pause) whenever it ends.
func (s *Store) watchLoop() {
	pause := 10 * time.Millisecond
	for s.bg.Err() == nil {
		ctx, cancel := context.WithCancel(s.bg)
		s.watch.cancel.Store(&cancel)
		f := &Feed{s: s}
		err := s.b.Watch(ctx, f)
		cancel()
		s.setDeadline(0) // nothing cached is served until the next generation vouches for it
		if s.bg.Err() != nil {
			return
		}
		if f.heard.Load() {
			pause = 10 * time.Millisecond
		}
		s.log.Warn("sessionstore: change feed ended; dropping the cache and starting again", "namespace", s.ns, "err", err)
		select {
		case <-s.bg.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// A Feed is what a backend's Watch reports to, for one generation of the
// change feed; Watch's goroutines may call its methods.
type Feed struct {
	s     *Store
	gen   uint64
	heard atomic.Bool // Heard was called
}

// Begin starts the generation, dropping every cached value (not sequence
// numbers). Watch calls it once, after a fresh read of the backend's
// position and before it reports changes from there.
func (f *Feed) Begin() {
	s := f.s
	s.cache.Lock()
	defer s.cache.Unlock()
	s.watch.mu.Lock()
	f.gen = s.watch.gen.Add(1)
	s.watch.serving.Store(0) // until Heard
	s.watch.mu.Unlock()
	s.cache.UpdateAllLocked(func(e entry) entry { return entry{maxSeq: e.maxSeq} })
}

// Heard says that every change committed before sent (a time.Now, with
// its monotonic reading) has been reported: the cache may serve until sent
// plus the staleness bound.
func (f *Feed) Heard(sent time.Time) {
	f.heard.Store(true)
	f.s.setDeadline(int64(sent.Sub(f.s.epoch) + f.s.maxStaleness))
}

// MaxStaleness is the staleness bound.
func (f *Feed) MaxStaleness() time.Duration { return f.s.maxStaleness }

// Serving reports whether the cache serves now.
func (f *Feed) Serving() bool { return f.s.Watching() }

// Wants reports whether the Store caches a value of name's record older
// than ver: only then need a feed read a changed record's bytes.
func (f *Feed) Wants(name string, ver int64) bool {
	e := f.s.cache.Get(name)
	return e != nil && e.ok && e.ver < ver
}

// Changed records a change of name's record to version ver (data nil: a
// delete, or bytes not read). A cached value is replaced by the new one,
// decrypted here, or dropped; for a record not cached, the version is
// noted, so that a read that raced with the change is not cached.
func (f *Feed) Changed(name string, ver int64, data []byte) {
	s := f.s
	e := s.cache.Get(name)
	if e != nil && e.ver >= ver {
		return // our own write, or already read
	}
	var next *entry
	if p, ok := s.pending.Load(name); ok && data != nil && bytes.Equal(p.(*pendingWrite).ct, data) {
		// Our own write, seen before its commit returned.
		pe := p.(*pendingWrite).e
		pe.ver, pe.gen = ver, f.gen
		next = &pe
	} else if data != nil && e != nil && e.ok {
		if rec, _, err := envelope.Open(s.keys.Ring(), data, s.ns, name); err == nil {
			if a, err := wire.DecodeAuth(rec.Auth); err == nil && rec.Seq >= e.maxSeq {
				next = &entry{ok: true, auth: a, ver: ver, seq: rec.Seq, written: rec.Written, maxSeq: rec.Seq, gen: f.gen}
			}
		}
	}
	s.cache.Lock()
	defer s.cache.Unlock()
	if s.watch.gen.Load() != f.gen {
		return
	}
	s.cache.UpdateLocked(name, func(e entry) entry {
		if e.ver >= ver {
			return e
		}
		if next != nil && next.maxSeq >= e.maxSeq {
			return *next
		}
		return entry{maxSeq: e.maxSeq, ver: ver}
	})
}

// fill caches a, the value of name's record at version ver, read or
// written while generation gen was current, unless the generation changed
// meanwhile (the new feed may have missed a change) or a later change is
// known. It returns the highest sequence number seen if seq is below it (a
// rollback), else 0. known is the version known before the read began (0
// for a write): a read below it went back (a row restored with its old
// version), a rollback if its sequence number did too.
func (s *Store) fill(gen uint64, name string, ver, known int64, a sessionstore.AuthObject, seq uint64, written time.Time) (rollback uint64) {
	s.cache.Lock()
	defer s.cache.Unlock()
	s.cache.UpdateLocked(name, func(e entry) entry {
		if e.ver > ver && (ver >= known || seq >= e.maxSeq) {
			// Late (another read, or the feed, was faster), not a rollback.
			return e
		}
		if seq < e.maxSeq {
			rollback = e.maxSeq
			return e
		}
		if s.watch.gen.Load() != gen {
			e.maxSeq = seq
			return e
		}
		return entry{ok: true, auth: a, ver: ver, seq: seq, written: written, maxSeq: seq, gen: gen}
	})
	return rollback
}

// forget drops name's cached value if it is older than version ver (0:
// whatever its version), keeping its highest sequence number.
func (s *Store) forget(name string, ver int64) {
	s.cache.UpdateExisting(name, func(e entry) entry {
		if ver != 0 && e.ver >= ver {
			return e
		}
		return entry{maxSeq: e.maxSeq, ver: max(e.ver, ver)}
	})
}
