package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// Get returns the session stored under authType, or an error wrapping
// sessionstore.ErrNotFound. The value is the caller's: changing it changes
// nothing stored. A cached value costs no I/O and, unless it has Extra, no
// allocation; it is served only while the Store's watch is healthy and has
// heard from etcd within WithMaxStaleness. Otherwise Get reads the record
// from etcd (a linearizable read).
func (s *Store) Get(ctx context.Context, authType string) (sessionstore.AuthObject, error) {
	// serving is 0 once the Store is closed: no closed check here.
	if e := s.cache.Get(authType); e != nil && e.ok && s.watch.vouches(e.gen) {
		if e.auth.Extra == nil {
			return e.auth, nil
		}
		return e.auth.Clone(), nil
	}
	return s.getSlow(ctx, authType)
}

// getSlow is Get when the cache does not serve: a function of its own, so
// that Get's hit path keeps a small frame.
func (s *Store) getSlow(ctx context.Context, authType string) (sessionstore.AuthObject, error) {
	if err := s.checkOpen("get"); err != nil {
		return sessionstore.AuthObject{}, err
	}
	if err := ctx.Err(); err != nil {
		return sessionstore.AuthObject{}, err
	}
	stem, err := stemOf(authType)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	a, err := s.load(ctx, authType, s.recordKey(stem))
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	return a.Clone(), nil
}

// load reads name's record from etcd and returns its value, from the cache
// if the record has not changed since it was cached, and caches it.
func (s *Store) load(ctx context.Context, name, key string) (sessionstore.AuthObject, error) {
	gen := s.watch.gen.Load() // before the read: see fill
	s.reads.Add(1)
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return sessionstore.AuthObject{}, fmt.Errorf("etcdstore: read %s: %w", key, ctxErr(ctx, err))
	}
	if len(resp.Kvs) == 0 {
		s.forget(name, resp.Header.Revision)
		return sessionstore.AuthObject{}, fmt.Errorf("etcdstore: %s: %w", key, sessionstore.ErrNotFound)
	}
	kv := resp.Kvs[0]
	if e := s.cache.Get(name); e != nil && e.ok && e.modRev == kv.ModRevision {
		// Unchanged since cached: no decryption; the current watch
		// generation vouches for it from now on.
		s.fill(gen, name, e.modRev, e.auth, e.seq, e.written)
		return e.auth, nil
	}
	rec, err := s.open(kv.Value, name, key)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	a, err := wire.DecodeAuth(rec.Auth)
	if err != nil {
		return sessionstore.AuthObject{}, fmt.Errorf("etcdstore: %s: %w", key, err)
	}
	if prev := s.fill(gen, name, kv.ModRevision, a, rec.Seq, rec.Written); prev != 0 {
		return sessionstore.AuthObject{}, rollbackError(key, prev, rec.Seq)
	}
	return a, nil
}

// fill caches a, the value of name's record at revision modRev, read or
// written while watch generation gen was current. It caches nothing if
// the generation changed meanwhile (the new watch may have missed a change
// after modRev) or the watch already reported a later change. It returns
// the highest sequence number seen if seq is below it (a rollback), else 0.
func (s *Store) fill(gen uint64, name string, modRev int64, a sessionstore.AuthObject, seq uint64, written time.Time) (rollback uint64) {
	s.cache.Lock()
	defer s.cache.Unlock()
	s.cache.UpdateLocked(name, func(e entry) entry {
		if e.modRev > modRev {
			// A read older than what this Store knows (another Get's, or
			// the watch's, was faster): late, not a rollback.
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
		return entry{ok: true, auth: a, modRev: modRev, seq: seq, written: written, maxSeq: seq, gen: gen}
	})
	return rollback
}

// forget drops name's cached value if it is older than revision rev (0:
// whatever its revision), keeping its highest sequence number.
func (s *Store) forget(name string, rev int64) {
	s.cache.UpdateExisting(name, func(e entry) entry {
		if rev != 0 && e.modRev >= rev {
			return e
		}
		f := e.forgotten()
		f.modRev = max(e.modRev, rev)
		return f
	})
}

// open decrypts and verifies a record. If no identity opens it, the key
// file is reloaded once and the record tried again: a rotation may just
// have happened.
func (s *Store) open(data []byte, name, key string) (*crypto.Record, error) {
	s.opens.Add(1)
	rec, _, err := s.keys.Ring().OpenIn(data, s.prefix, name)
	if errors.Is(err, sessionstore.ErrWrongKey) {
		if changed, rerr := s.keys.Reload(); rerr == nil && changed {
			rec, _, err = s.keys.Ring().OpenIn(data, s.prefix, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("etcdstore: %s: %w", key, err)
	}
	return rec, nil
}
