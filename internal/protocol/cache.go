package protocol

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// An entry is what a Store knows of one record. Entries are immutable once
// published: a change stores a new one.
type entry struct {
	ok      bool                    // auth holds the record's value
	auth    sessionstore.AuthObject // the value, owned by the cache
	ver     int64                   // the version of the record's last change this Store knows of
	seq     uint64
	written time.Time // when the record was written
	maxSeq  uint64    // the highest sequence number seen, for sessionstore.ErrRollback
	gen     uint64    // the feed generation that vouches for it (see watchState)
}

// watchState is the health of the Store's change feed.
//
// Each (re)start of the feed is a generation: it begins with a fresh read
// (Feed.Begin), drops every cached value, and reports every change from
// that read on. A cached entry carries the generation that was current
// when it was read or written, and is served only while that generation
// is current and its deadline has not passed. The deadline moves only when
// the backend hears that every change committed before a given time has
// been reported (Feed.Heard); the cache stays servable for the staleness
// bound after that time.
//
// A Get reads no clock and one atomic word: serving is the generation
// whose entries may be served now, 0 when none may (the deadline has
// passed, the feed is restarting, the Store is closed). A timer clears it
// a little before the deadline (staleMargin), so that a timer that fires
// late by less than that still keeps the bound.
type watchState struct {
	gen      atomic.Uint64 // the current generation; changed under the cache's lock
	deadline atomic.Int64  // serve cached values until then (Mono); 0: don't
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

// Watching reports whether the Store currently serves values from its
// cache: its change feed is up and was heard from within the bound.
func (s *Store) Watching() bool { return s.watch.serving.Load() != 0 }

// RestartFeed ends the current generation of s's change feed, as a
// failure would; the feed starts again from a fresh read (tests).
func RestartFeed(s *Store) {
	if c := s.watch.cancel.Load(); c != nil {
		(*c)()
	}
}

// setDeadline makes cached values servable until deadline (Mono; 0: not
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
// staleMargin, has come, and otherwise waits again.
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

// watchLoop keeps the change feed running until Close, restarting it
// (after a growing pause) whenever it ends.
func (s *Store) watchLoop() {
	defer s.wg.Done()
	pause := 10 * time.Millisecond
	for s.bg.Err() == nil {
		ctx, cancel := context.WithCancel(s.bg)
		s.watch.cancel.Store(&cancel)
		f := &Feed{s: s, cancel: cancel}
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
// change feed. Its methods are called from Watch's goroutines.
type Feed struct {
	s      *Store
	cancel context.CancelFunc
	gen    uint64
	heard  atomic.Bool // Heard was called
}

// Begin starts the generation, dropping every cached value (keeping
// sequence numbers, for sessionstore.ErrRollback). Watch calls it once,
// after a fresh read of the backend's position and before it reports
// changes from that position on.
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

// Heard says that every change committed before sent (a Mono time) has
// been reported: the cache may serve until sent plus the staleness bound.
func (f *Feed) Heard(sent int64) {
	f.heard.Store(true)
	f.s.setDeadline(sent + int64(f.s.maxStaleness))
}

// Mono is the Store's monotonic clock, for Heard.
func (f *Feed) Mono() int64 { return f.s.mono() }

// MaxStaleness is the staleness bound.
func (f *Feed) MaxStaleness() time.Duration { return f.s.maxStaleness }

// Serving reports whether the cache serves now.
func (f *Feed) Serving() bool { return f.s.Watching() }

// Log is the Store's logger.
func (f *Feed) Log() *slog.Logger { return f.s.log }

// Wants reports whether the Store holds a value of name's record older
// than version ver: a feed that learns of a change without the record's
// bytes reads them only then (not for a record the Store does not cache,
// nor for its own write, which it knows already).
func (f *Feed) Wants(name string, ver int64) bool {
	e := f.s.cache.Get(name)
	return e != nil && e.ok && e.ver < ver
}

// Changed records a change of name's record to version ver (data nil: it
// was deleted). The cached value of a changed record is replaced by the
// new one (decrypted here, so that a Get needs no round trip) if the Store
// cached it, else dropped; a change of a record the Store never read only
// notes its version, so that a read that raced with it is not cached.
func (f *Feed) Changed(name string, ver int64, data []byte) {
	s := f.s
	e := s.cache.Get(name)
	if e != nil && e.ver >= ver {
		return // our own write, or already read
	}
	var next *entry
	if p, ok := s.pending.Load(name); ok && data != nil && bytes.Equal(p.(*pendingWrite).ct, data) {
		// This Store's own write, seen before its commit returned: what
		// it holds is known without decrypting it.
		pw := p.(*pendingWrite)
		next = &entry{ok: true, auth: pw.auth, ver: ver, seq: pw.seq, written: pw.written, maxSeq: pw.seq, gen: f.gen}
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
// written while generation gen was current. It caches nothing if the
// generation changed meanwhile (the new feed may have missed a change
// after ver) or the feed already reported a later change. It returns the
// highest sequence number seen if seq is below it (a rollback), else 0.
// known is the version the Store knew of before the read began (knownVer;
// 0 for a write): a read below it is not late but went back, a rollback if
// its sequence number did too (a row restored with its old version).
func (s *Store) fill(gen uint64, name string, ver, known int64, a sessionstore.AuthObject, seq uint64, written time.Time) (rollback uint64) {
	s.cache.Lock()
	defer s.cache.Unlock()
	s.cache.UpdateLocked(name, func(e entry) entry {
		if e.ver > ver && (ver >= known || seq >= e.maxSeq) {
			// A read older than what this Store knows (another Get's, or
			// the feed's, was faster): late, not a rollback.
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

// knownVer is the version of name's record this Store knows of, for fill.
func (s *Store) knownVer(name string) int64 {
	if e := s.cache.Get(name); e != nil {
		return e.ver
	}
	return 0
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
