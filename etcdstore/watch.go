package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/sessionstore/sessionstore/internal/wire"
)

// watchState is the health of the Store's watch on <prefix>/records/.
//
// Each (re)start of the watch is a generation: it begins with a fresh read
// of the prefix's revision, drops every cached value, and watches from that
// revision. A cached entry carries the generation that was current
// when it was read or written, and is served only while that generation is
// current and its deadline has not passed. The deadline moves only when
// etcd answers a progress request: each request is preceded by a
// linearizable read of the cluster's revision, and a progress notification
// at that revision or later says that every change acknowledged before the
// request has been delivered, so the cache is current as of the request's
// time, and stays servable for maxStaleness after it. (A member that lags
// behind the cluster, as a follower may after an election, answers with
// its own older revision: that answer vouches for nothing.)
//
// A Get reads no clock and one atomic word: serving is the generation
// whose entries may be served now, 0 when none may (the deadline has
// passed, the watch is restarting, the Store is closed). A timer clears it
// a little before the deadline (staleMargin), so that a timer that fires
// late by less than that still keeps the bound.
type watchState struct {
	gen      atomic.Uint64                   // the current generation; changed under cache.mu
	deadline atomic.Int64                    // serve cached values until then (ns since Store.epoch); 0: don't
	serving  atomic.Uint64                   // gen while the deadline, less staleMargin, is ahead; else 0; changed under mu
	pending  atomic.Pointer[progressRequest] // the outstanding progress request; nil: none
	cancel   atomic.Pointer[context.CancelFunc]

	mu    sync.Mutex  // guards timer; orders changes of deadline and serving
	timer *time.Timer // clears serving at the deadline, less staleMargin

	restarts atomic.Uint64 // generations started, for tests and logs
}

// A progressRequest is a progress request awaiting its answer.
type progressRequest struct {
	sent int64 // when it was made (ns since Store.epoch)
	rev  int64 // the cluster's revision then: the answer must be at least this
}

// staleMargin is how long before its deadline the cache stops being
// served: a tenth of the bound, at most 50 ms.
func staleMargin(maxStaleness time.Duration) int64 {
	return int64(min(maxStaleness/10, 50*time.Millisecond))
}

// vouches reports whether a cached entry of generation gen may be served.
func (w *watchState) vouches(gen uint64) bool {
	return gen != 0 && gen == w.serving.Load()
}

// setDeadline makes cached values servable until deadline (ns since the
// Store's epoch; 0: not at all).
func (s *Store) setDeadline(deadline int64) {
	w := &s.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline.Store(deadline)
	until := deadline - staleMargin(s.maxStaleness) - s.mono()
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
	until := w.deadline.Load() - staleMargin(s.maxStaleness) - s.mono()
	if until <= 0 {
		w.serving.Store(0)
		return
	}
	w.timer.Reset(time.Duration(until))
}

// mono is a monotonic clock: nanoseconds since the Store was opened.
func (s *Store) mono() int64 { return int64(time.Since(s.epoch)) }

// Watching reports whether the Store currently serves values from its
// cache: its watch is up and etcd answered within WithMaxStaleness.
func (s *Store) Watching() bool {
	return s.watch.serving.Load() != 0
}

// watchLoop keeps the watch running until Close, restarting it (after a
// growing pause) whenever it ends: compaction, cancellation, a member
// without a leader, a stream that stopped answering.
func (s *Store) watchLoop() {
	defer s.wg.Done()
	pause := 10 * time.Millisecond
	for s.bg.Err() == nil {
		healthy, err := s.watchOnce()
		s.setDeadline(0) // nothing cached is served until the next generation vouches for it
		if s.bg.Err() != nil {
			return
		}
		if healthy {
			pause = 10 * time.Millisecond
		}
		s.log.Warn("sessionstore: etcd watch ended; dropping the cache and starting again", "prefix", recordsPrefix(s.prefix), "err", err)
		select {
		case <-s.bg.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// watchOnce runs one generation of the watch. It reports whether etcd
// answered a progress request in it, and why it ended.
func (s *Store) watchOnce() (healthy bool, err error) {
	// A stream of the Store's own (gRPC metadata makes it distinct), so
	// that its progress requests and their answers are its own; and it
	// requires a leader, so that a member cut off from the cluster ends the
	// watch instead of serving it stale.
	ctx := metadata.AppendToOutgoingContext(s.bg, "sessionstore-watch", fmt.Sprintf("%p", s))
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	s.watch.cancel.Store(&cancel)
	if s.hooks.beforeFreshRead != nil {
		s.hooks.beforeFreshRead()
	}

	pfx := recordsPrefix(s.prefix)
	resp, err := s.client.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("fresh read of %s: %w", pfx, err)
	}
	rev := resp.Header.Revision
	gen := s.newGeneration()
	if s.hooks.beforeWatch != nil {
		s.hooks.beforeWatch()
	}
	// From rev itself, not rev+1: etcd answers no progress request for a
	// watch that starts past its current revision. Changes at rev are
	// already in any later read, and apply ignores what is not newer than
	// a cached entry.
	wch := s.client.Watch(ctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(rev),
		clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())

	s.watch.pending.Store(nil)
	for wr := range wch {
		if err := wr.Err(); err != nil {
			return healthy, err
		}
		if wr.Canceled {
			return healthy, errors.New("watch canceled")
		}
		if s.hooks.onResponse != nil {
			s.hooks.onResponse()
		}
		if wr.Created {
			// Progress answers go to the watches the stream has.
			go s.requestProgress(ctx, cancel, pfx)
		}
		for _, ev := range wr.Events {
			s.apply(gen, pfx, ev)
		}
		if p := s.watch.pending.Load(); p != nil && wr.IsProgressNotify() && wr.Header.Revision >= p.rev &&
			s.watch.pending.CompareAndSwap(p, nil) {
			s.setDeadline(p.sent + int64(s.maxStaleness))
			healthy = true
		}
	}
	if err := ctx.Err(); err != nil {
		return healthy, err
	}
	return healthy, errors.New("watch channel closed")
}

// newGeneration drops every cached value (keeping sequence numbers, for
// sessionstore.ErrRollback) and starts a new watch generation.
func (s *Store) newGeneration() uint64 {
	s.cache.Lock()
	defer s.cache.Unlock()
	s.watch.mu.Lock()
	gen := s.watch.gen.Add(1)
	s.watch.serving.Store(0) // until a progress answer of this generation
	s.watch.mu.Unlock()
	s.watch.restarts.Add(1)
	s.cache.UpdateAllLocked(func(e entry) entry { return entry{maxSeq: e.maxSeq} })
	return gen
}

// requestProgress asks etcd for a progress notification three times per
// maxStaleness. If no answer came for maxStaleness, it ends the watch
// (cancel), to be restarted from a fresh read.
func (s *Store) requestProgress(ctx context.Context, cancel context.CancelFunc, pfx string) {
	every := max(s.maxStaleness/3, time.Millisecond)
	// Until the first answer the cache serves nothing, and etcd drops a
	// request that comes while a new watch catches up (it syncs such
	// watches every 100 ms): ask every 10 ms until answered, rather than
	// every third of maxStaleness.
	const retry = 10 * time.Millisecond
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		p := s.watch.pending.Load()
		if p != nil && s.mono()-p.sent > int64(s.maxStaleness) {
			s.log.Warn("sessionstore: etcd watch stopped answering; restarting it", "prefix", s.prefix)
			cancel()
			return
		}
		if p == nil {
			sent := s.mono()
			resp, err := s.client.Get(ctx, pfx, clientv3.WithCountOnly())
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				s.log.Warn("sessionstore: etcd read of the revision failed", "prefix", s.prefix, "err", err)
			default:
				p = &progressRequest{sent: sent, rev: resp.Header.Revision}
				s.watch.pending.Store(p)
			}
		}
		// Also again while unanswered: etcd drops a request that comes
		// while the watch catches up, and a lagging member answers below
		// p.rev. An answer is then dated from the first request, which
		// errs on the safe side.
		if p != nil {
			if err := s.client.RequestProgress(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("sessionstore: etcd progress request failed", "prefix", s.prefix, "err", err)
			}
		}
		wait := every
		if !s.Watching() {
			wait = min(retry, every)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// apply records one change of the records under the prefix. The cached
// value of a changed record is replaced by the new one (decrypted here, so
// that a Get needs no round trip) if the Store cached it, else dropped; a
// change of a record the Store never read only notes its revision, so that
// a read that raced with it is not cached.
func (s *Store) apply(gen uint64, pfx string, ev *clientv3.Event) {
	name, ok := nameOf(strings.TrimPrefix(string(ev.Kv.Key), pfx))
	if !ok {
		return
	}
	rev := ev.Kv.ModRevision
	e := s.cache.Get(name)
	if e != nil && e.modRev >= rev {
		return // our own write, or already read
	}
	var next *entry
	if p, ok := s.pending.Load(name); ok && ev.Type == clientv3.EventTypePut && bytes.Equal(p.(*pendingWrite).ct, ev.Kv.Value) {
		// This Store's own write, seen before its commit returned: what it
		// holds is known without decrypting it.
		pw := p.(*pendingWrite)
		next = &entry{ok: true, auth: pw.auth, modRev: rev, seq: pw.seq, written: pw.written, maxSeq: pw.seq, gen: gen}
	} else if ev.Type == clientv3.EventTypePut && e != nil && e.ok {
		if rec, _, err := s.keys.Ring().OpenIn(ev.Kv.Value, s.prefix, name); err == nil {
			s.opens.Add(1)
			if a, err := wire.DecodeAuth(rec.Auth); err == nil && rec.Seq >= e.maxSeq {
				next = &entry{ok: true, auth: a, modRev: rev, seq: rec.Seq, written: rec.Written, maxSeq: rec.Seq, gen: gen}
			}
		}
	}
	s.cache.Lock()
	defer s.cache.Unlock()
	if s.watch.gen.Load() != gen {
		return
	}
	s.cache.UpdateLocked(name, func(e entry) entry {
		if e.modRev >= rev {
			return e
		}
		if next != nil && next.maxSeq >= e.maxSeq {
			return *next
		}
		return entry{maxSeq: e.maxSeq, modRev: rev}
	})
}
