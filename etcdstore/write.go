package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/decide"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// commitAttempts bounds how often a write whose outcome etcd left unknown
// (a timeout during a leader change) is tried again, fenced as the first
// time; settleTimeout bounds the read that finds out the outcome once the
// caller's context is done.
const (
	commitAttempts = 5
	settleTimeout  = 5 * time.Second
)

// maxHistory bounds how many versions of a record appliedSince reads back.
const maxHistory = 64

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
// (across hosts) throughout: no update is lost. If fn returns an error
// nothing is written and Update returns it; if it returns a value Equal to
// cur, nothing is written either. A record that cannot be opened makes
// Update fail without calling fn. If the Store's lease ended while fn ran
// (the process stalled past the lock TTL), the result is not stored and
// Update returns an error wrapping sessionstore.ErrLockLost.
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

// current is the record a writer found under the lock.
type current struct {
	exists  bool
	auth    sessionstore.AuthObject
	modRev  int64 // the record key's ModRevision; 0 if absent
	seq     uint64
	written time.Time
	err     error // the record exists but does not open
}

// write runs the write protocol of one record: lock, check the keys, read
// the current record, let fn decide, seal, write with a transaction fenced
// on the record's revision and on the lock, unlock.
func (s *Store) write(ctx context.Context, op, authType string,
	decideFn decide.Func) (sessionstore.AuthObject, error) {
	if err := s.checkOpen(op); err != nil {
		return sessionstore.AuthObject{}, err
	}
	stem, err := stemOf(authType)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	key := s.recordKey(stem)
	m, sess, unlock, err := s.lockCurrentKeys(ctx, stem)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	defer unlock()
	ring := s.keys.Ring()
	gen := s.watch.gen.Load()
	cur, err := s.readCurrent(ctx, gen, ring, authType, key)
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
	if e := s.cache.Get(authType); e != nil {
		maxSeq = e.maxSeq
	}
	now := s.now()
	seq := max(cur.seq+1, maxSeq+1, uint64(max(now.UnixNano(), 0)))

	var put clientv3.Op
	var ct []byte
	if act == decide.Store {
		authJSON, err := wire.EncodeAuth(next)
		if err != nil {
			return sessionstore.AuthObject{}, fmt.Errorf("etcdstore: %s %q: auth object does not encode: %w", op, authType, err)
		}
		defer clear(authJSON)
		if next.Extra != nil {
			// Cache what a reader will decode (JSON numbers as float64 and
			// so on), sharing nothing with the caller.
			if next, err = wire.DecodeAuth(authJSON); err != nil {
				return sessionstore.AuthObject{}, err
			}
		}
		ct, err = ring.Seal(&crypto.Record{Version: wire.VersionOf(next), Namespace: s.prefix, AuthType: authType, Seq: seq, Written: now, Auth: authJSON})
		if err != nil {
			return sessionstore.AuthObject{}, fmt.Errorf("etcdstore: %s: %w", key, err)
		}
		put = clientv3.OpPut(key, string(ct))
	} else {
		put = clientv3.OpDelete(key)
	}

	if ct != nil {
		s.pending.Store(authType, &pendingWrite{ct: ct, auth: next, seq: seq, written: now})
		defer s.pending.Delete(authType)
	}
	rev, err := s.commit(ctx, sess, m, key, cur.modRev, put, ct)
	var unknown *unknownOutcome
	if errors.As(err, &unknown) {
		// Release the lock first: no attempt still in flight can then
		// pass its fence, so the read below tells the outcome for good.
		unlock()
		rev, err = s.settle(ctx, key, ct, unknown)
	}
	if err != nil {
		s.forget(authType, 0)
		return sessionstore.AuthObject{}, err
	}
	if act == decide.Remove {
		s.cache.Update(authType, func(e entry) entry {
			return entry{maxSeq: max(e.maxSeq, cur.seq), modRev: max(e.modRev, rev)}
		})
		return sessionstore.AuthObject{}, nil
	}
	s.fill(gen, authType, rev, next, seq, now)
	return next.Clone(), nil
}

// readCurrent reads the record a writer is about to replace. A record that
// does not open is reported in current.err, not as an error: Set replaces
// it, Update returns it.
func (s *Store) readCurrent(ctx context.Context, gen uint64, ring *crypto.Keyring, authType, key string) (*current, error) {
	s.reads.Add(1)
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: read %s: %w", key, ctxErr(ctx, err))
	}
	if len(resp.Kvs) == 0 {
		return &current{}, nil
	}
	kv := resp.Kvs[0]
	if e := s.cache.Get(authType); e != nil && e.ok && e.modRev == kv.ModRevision {
		// Our own last write, or known: no decryption.
		return &current{exists: true, auth: e.auth, modRev: kv.ModRevision, seq: e.seq, written: e.written}, nil
	}
	s.opens.Add(1)
	rec, _, err := ring.OpenIn(kv.Value, s.prefix, authType)
	if err != nil {
		return &current{exists: true, modRev: kv.ModRevision, err: fmt.Errorf("etcdstore: %s: %w", key, err)}, nil
	}
	a, err := wire.DecodeAuth(rec.Auth)
	if err != nil {
		return &current{exists: true, modRev: kv.ModRevision, seq: rec.Seq, err: fmt.Errorf("etcdstore: %s: %w", key, err)}, nil
	}
	if prev := s.fill(gen, authType, kv.ModRevision, a, rec.Seq, rec.Written); prev != 0 {
		return &current{exists: true, modRev: kv.ModRevision, seq: rec.Seq, err: rollbackError(key, prev, rec.Seq)}, nil
	}
	return &current{exists: true, auth: a, modRev: kv.ModRevision, seq: rec.Seq, written: rec.Written}, nil
}

// A pendingWrite is a record this Store is writing: its ciphertext and
// what it holds.
type pendingWrite struct {
	ct      []byte
	auth    sessionstore.AuthObject
	seq     uint64
	written time.Time
}

// An unknownOutcome is a write that etcd neither confirmed nor refused.
type unknownOutcome struct {
	key     string
	cause   error // what lost etcd's answer (a timeout, the caller's context)
	lockRev int64 // the revision at which the writer's lock was acquired
}

func (u *unknownOutcome) Error() string {
	return fmt.Sprintf("etcdstore: writing %s: %v", u.key, u.cause)
}
func (u *unknownOutcome) Unwrap() error { return u.cause }

// unknown is the error of a write whose outcome settle could not
// establish either, for why: it wraps sessionstore.ErrOutcomeUnknown (and
// the cause, such as the caller's context error).
func (u *unknownOutcome) unknown(why error) error {
	return fmt.Errorf("etcdstore: writing %s: %w (%w; reading it back: %v); re-read the record before retrying",
		u.key, sessionstore.ErrOutcomeUnknown, u.cause, why)
}

// notApplied is the error of a write that settle found was not applied.
func (u *unknownOutcome) notApplied() error {
	return fmt.Errorf("etcdstore: writing %s: %w; not applied", u.key, u.cause)
}

// commit writes op (a put of ct, or a delete) to key in a transaction
// fenced on the record's revision (modRev, 0 for an absent record) and on
// m still being held, which also deletes m's key: the lock is released in
// the same round trip as the write (sess remembers it, so that unlocking
// costs nothing more). It returns the revision of the write. An error that
// leaves the outcome unknown is retried, fenced as before: a transaction
// that fails its fence answers with the record and the lock key, which
// tell whether an earlier attempt was applied. It returns an
// *unknownOutcome when ctx ends or the attempts run out first.
func (s *Store) commit(ctx context.Context, sess *session, m *concurrency.Mutex, key string, modRev int64, op clientv3.Op, ct []byte) (int64, error) {
	backoff := 50 * time.Millisecond
	var lost error // why the previous attempt's answer was lost
	for attempt := 1; ; attempt++ {
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev), m.IsOwner()).
			Then(op, clientv3.OpDelete(m.Key())).
			Else(clientv3.OpGet(key), clientv3.OpGet(m.Key())).
			Commit()
		if err == nil {
			if resp.Succeeded {
				sess.released.Store(m, struct{}{})
				return resp.Header.Revision, nil
			}
			rec := resp.Responses[0].GetResponseRange().Kvs
			if attempt > 1 {
				if ct != nil && len(rec) == 1 && bytes.Equal(rec[0].Value, ct) {
					sess.released.Store(m, struct{}{})
					return rec[0].ModRevision, nil // an earlier attempt was applied
				}
				if ct != nil && len(resp.Responses[1].GetResponseRange().Kvs) == 0 {
					// The lock is gone: an earlier attempt may have been
					// applied, releasing it, and another host may have
					// written since. The record's history tells.
					rev, applied, err := s.appliedSince(ctx, key, ct, lockRev(m))
					if err != nil {
						return 0, &unknownOutcome{key: key, cause: lost, lockRev: lockRev(m)} // settle tells, or says why not
					}
					if applied {
						sess.released.Store(m, struct{}{})
						return rev, nil
					}
				}
				if ct == nil && len(rec) == 0 {
					if len(resp.Responses[1].GetResponseRange().Kvs) == 0 {
						sess.released.Store(m, struct{}{}) // with the lock
					}
					return resp.Header.Revision, nil // deleted
				}
			}
			if len(resp.Responses[1].GetResponseRange().Kvs) == 0 {
				return 0, fmt.Errorf("etcdstore: writing %s: the lease of lock %s ended; not applied: %w", key, m.Key(), sessionstore.ErrLockLost)
			}
			return 0, fmt.Errorf("etcdstore: writing %s: the record changed under lock %s (written without the lock?); not applied", key, m.Key())
		}
		lost = ctxErr(ctx, err)
		if ctx.Err() != nil || attempt == commitAttempts {
			return 0, &unknownOutcome{key: key, cause: lost, lockRev: lockRev(m)}
		}
		s.log.Warn("sessionstore: etcd write outcome unknown; trying again, fenced", "key", key, "attempt", attempt, "err", lost)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// settle finds out whether a write whose outcome was unknown was applied,
// once its lock is released: the record holds ct (or, for a delete, is
// gone). It reads with a context of its own, since the caller's may be
// done. If it cannot tell, its error wraps sessionstore.ErrOutcomeUnknown.
func (s *Store) settle(ctx context.Context, key string, ct []byte, u *unknownOutcome) (int64, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	resp, err := s.client.Get(rctx, key)
	if err != nil {
		return 0, u.unknown(err)
	}
	if ct != nil && len(resp.Kvs) == 1 && bytes.Equal(resp.Kvs[0].Value, ct) {
		return resp.Kvs[0].ModRevision, nil
	}
	if ct == nil && len(resp.Kvs) == 0 {
		return resp.Header.Revision, nil
	}
	if ct != nil && u.lockRev > 0 {
		// Another host may have written after an applied attempt (which
		// released the lock): look back through the record's history.
		rev, applied, err := s.appliedSince(rctx, key, ct, u.lockRev)
		if err != nil {
			return 0, u.unknown(err)
		}
		if applied {
			return rev, nil
		}
	}
	return 0, u.notApplied()
}

// lockRev is the revision at which m was acquired: every write under it
// has a later revision.
func lockRev(m *concurrency.Mutex) int64 {
	if h := m.Header(); h != nil {
		return h.Revision
	}
	return 0
}

// appliedSince reports whether the record at key held ct at some revision
// after lockRev (ct's age header is random: no other write has its bytes),
// walking back through the record's history from now. It returns an error
// if the history cannot tell (compacted, deleted since, or too many
// writes since the lock); the error does not name key, which its callers
// do.
func (s *Store) appliedSince(ctx context.Context, key string, ct []byte, lockRev int64) (int64, bool, error) {
	var opts []clientv3.OpOption
	for range maxHistory {
		resp, err := s.client.Get(ctx, key, opts...)
		if err != nil {
			return 0, false, fmt.Errorf("reading the record's history: %w", err)
		}
		if len(resp.Kvs) == 0 {
			return 0, false, errors.New("the record was deleted since the write")
		}
		kv := resp.Kvs[0]
		switch {
		case kv.ModRevision <= lockRev:
			return 0, false, nil // back before the lock: never written
		case bytes.Equal(kv.Value, ct):
			return kv.ModRevision, true, nil
		}
		opts = []clientv3.OpOption{clientv3.WithRev(kv.ModRevision - 1)}
	}
	return 0, false, fmt.Errorf("more than %d writes to the record since the lock", maxHistory)
}

func rollbackError(key string, from, to uint64) error {
	return fmt.Errorf("etcdstore: %s: sequence number went back from %d to %d: %w", key, from, to, sessionstore.ErrRollback)
}
