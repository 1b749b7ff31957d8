package protocol

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/decide"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/names"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// settleTimeout bounds the read that settles an ambiguous write.
const settleTimeout = 5 * time.Second

// Set stores auth under authType, replacing what was there, even a record
// that cannot be opened because it is corrupt or forged. Over a record
// sealed to a key this Store does not hold, Set returns an error wrapping
// sessionstore.ErrWrongKey and changes nothing: the record may be fine for
// hosts with newer keys.
func (s *Store) Set(ctx context.Context, authType string, auth sessionstore.AuthObject) error {
	_, err := s.write(ctx, "set", authType, decide.Set(auth))
	return err
}

// Update runs fn on the session stored under authType (exists is false if
// there is none) and stores what it returns, holding the record's lock
// across hosts throughout: no update is lost. Nothing is written if fn
// returns an error (Update returns it) or a value Equal to cur. A record
// that cannot be opened makes Update fail without calling fn. If the
// Store's lease ended while fn ran, nothing is stored and the error wraps
// sessionstore.ErrLockLost.
func (s *Store) Update(ctx context.Context, authType string,
	fn func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error)) (sessionstore.AuthObject, error) {
	return s.write(ctx, "update", authType, decide.Update(fn))
}

// Delete removes the session stored under authType. Deleting a missing
// record is not an error. Sequence numbers keep growing across a Delete:
// a later Set is not a rollback, a replayed older record is.
func (s *Store) Delete(ctx context.Context, authType string) error {
	_, err := s.write(ctx, "delete", authType, decide.Delete())
	return err
}

// A pendingWrite is a record this Store is committing: its bytes and the
// entry they make.
type pendingWrite struct {
	ct []byte
	e  entry
}

// write is the write protocol of one record (see docs/ARCHITECTURE.md).
func (s *Store) write(ctx context.Context, op, name string, decideFn decide.Func) (sessionstore.AuthObject, error) {
	if err := s.checkOpen(op); err != nil {
		return sessionstore.AuthObject{}, err
	}
	if _, err := names.Stem(name); err != nil {
		return sessionstore.AuthObject{}, err
	}
	l, unlock, err := s.lockCurrentKeys(ctx, name)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	defer unlock()
	ring := s.keys.Ring()
	gen := s.watch.gen.Load()
	cur, err := s.read(ctx, gen, name)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	next, act, err := decideFn(decide.Current{Exists: cur.exists, Auth: cur.auth, Err: cur.err})
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	if act == decide.Keep || act == decide.Remove && !cur.exists {
		return cur.auth.Clone(), nil
	}

	var maxSeq uint64
	if e := s.cache.Get(name); e != nil {
		maxSeq = e.maxSeq
	}
	now := s.now()
	seq := max(cur.seq+1, maxSeq+1, uint64(max(now.UnixNano(), 0)))
	var ct []byte
	if act == decide.Store {
		authJSON, err := wire.EncodeAuth(next)
		if err != nil {
			return sessionstore.AuthObject{}, fmt.Errorf("%s: %s %q: auth object does not encode: %w", s.pkg, op, name, err)
		}
		defer clear(authJSON)
		if next.Extra != nil {
			// Cache what a reader will decode (JSON numbers as float64 and
			// so on), sharing nothing with the caller.
			if next, err = wire.DecodeAuth(authJSON); err != nil {
				return sessionstore.AuthObject{}, err
			}
		}
		ct, err = envelope.Seal(ring, &envelope.Record{Version: wire.VersionOf(next), Namespace: s.ns, AuthType: name, Seq: seq, Written: now, Auth: authJSON})
		if err != nil {
			return sessionstore.AuthObject{}, s.fail(name, err)
		}
		s.pending.Store(name, &pendingWrite{ct, entry{ok: true, auth: next, seq: seq, written: now, maxSeq: seq}})
		defer s.pending.Delete(name)
	}
	ver, err := s.commit(ctx, l, unlock, name, cur.ver, ct)
	if err != nil {
		s.forget(name, 0)
		return sessionstore.AuthObject{}, err
	}
	if act == decide.Remove {
		s.cache.Update(name, func(e entry) entry {
			return entry{maxSeq: max(e.maxSeq, cur.seq), ver: max(e.ver, ver)}
		})
		return sessionstore.AuthObject{}, nil
	}
	s.fill(gen, name, ver, 0, next, seq, now)
	return next.Clone(), nil
}

// commit is l.Commit, and the settling of an ambiguous outcome.
func (s *Store) commit(ctx context.Context, l Lock, unlock func(), name string, ver int64, ct []byte) (int64, error) {
	v, err := l.Commit(ctx, ver, ct)
	if errors.Is(err, ErrAmbiguous) {
		// Release the lock first: no attempt still in flight can then
		// pass its fence, so what is read next tells the outcome for good.
		unlock()
		return s.settle(ctx, l, name, ver, ct, err)
	}
	return v, err
}

// settle finds out whether a write whose outcome was unknown (cause) was
// applied: the record holds ct (or, for a delete, is gone), or the
// backend's history says it did. Else its error wraps
// sessionstore.ErrOutcomeUnknown. It reads whatever ctx's state.
func (s *Store) settle(ctx context.Context, l Lock, name string, ver int64, ct []byte, cause error) (int64, error) {
	where := s.b.Where(name)
	unknown := func(why error) error {
		return fmt.Errorf("%s: writing %s: %w (%w; reading it back: %v); re-read the record before retrying",
			s.pkg, where, sessionstore.ErrOutcomeUnknown, cause, why)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	raw, err := s.b.Read(rctx, name)
	switch {
	case err != nil:
		return 0, unknown(err)
	case bytes.Equal(raw.Data, ct) && (raw.Data == nil) == (ct == nil):
		return raw.Ver, nil // our bytes, or, for a delete, gone
	}
	// Another host may have written after an applied write: without
	// history, only the version the write was fenced on shows that
	// nothing was written.
	if h, ok := l.(Historian); ok && ct != nil {
		v, applied, err := h.AppliedSince(rctx, name, ct)
		if err != nil {
			return 0, unknown(err)
		}
		if applied {
			return v, nil
		}
	} else if raw.Ver != ver {
		return 0, unknown(errors.New("the record changed since"))
	}
	return 0, fmt.Errorf("%s: writing %s: %w; not applied", s.pkg, where, cause)
}

// lockCurrentKeys takes name's lock with the keyring as the key file
// stands under it: a writer never seals to a retired key. A changed key
// file is loaded (scrypt, perhaps) with no lock held, then the lock taken
// again; the reload is published in the heartbeat.
func (s *Store) lockCurrentKeys(ctx context.Context, name string) (Lock, func(), error) {
	reloaded := false
	for attempt := 0; ; attempt++ {
		l, unlock, err := s.lock(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		changed, err := s.keys.Changed()
		if err == nil && changed && attempt >= 3 {
			// The key file keeps changing: load it under the lock rather
			// than starve.
			_, err = s.keys.Reload()
			changed, reloaded = false, true
		}
		if err != nil {
			unlock()
			return nil, nil, err
		}
		if !changed {
			if reloaded {
				if err := s.b.Heartbeat(ctx, s.host()); err != nil {
					s.log.Warn("sessionstore: heartbeat", "namespace", s.ns, "err", err)
				}
			}
			return l, unlock, nil
		}
		unlock()
		if _, err := s.keys.Reload(); err != nil {
			return nil, nil, err
		}
		reloaded = true
	}
}

// lock takes name's in-process lock, then the backend's. unlock releases
// both; it may be called more than once.
func (s *Store) lock(ctx context.Context, name string) (Lock, func(), error) {
	unlockName, err := s.locks.Lock(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: lock %s: %w", s.pkg, s.b.Where(name), err)
	}
	l, err := s.b.Lock(ctx, name)
	if err != nil {
		unlockName()
		return nil, nil, err
	}
	return l, sync.OnceFunc(func() {
		l.Unlock()
		unlockName()
	}), nil
}
