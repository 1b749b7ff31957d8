package filestore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/decide"
	"github.com/sessionstore/sessionstore/internal/fsutil"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// Set stores auth under authType, replacing what was there, even a record
// that cannot be opened because it is corrupt, oversized, truncated or
// forged. Over a well-formed record sealed to a key this Store does not
// hold, it returns an error wrapping sessionstore.ErrWrongKey and changes
// nothing: the Store's keys are probably stale (a rotation happened), and
// the record may be fine for every other process.
func (s *Store) Set(ctx context.Context, authType string, auth sessionstore.AuthObject) error {
	_, err := s.write(ctx, "set", authType, decide.Set(auth))
	return err
}

// Update runs fn on the session stored under authType (exists is false if
// there is none) and stores what it returns, holding the record's lock
// throughout: no update is lost, across goroutines or processes. If fn
// returns an error nothing is written and Update returns it. A record that
// cannot be opened makes Update fail without calling fn.
func (s *Store) Update(ctx context.Context, authType string,
	fn func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error)) (sessionstore.AuthObject, error) {
	return s.write(ctx, "update", authType, decide.Update(fn))
}

// Delete removes the session stored under authType, whatever the record
// holds (even one that does not open). Deleting a missing record is not an
// error. Sequence numbers keep growing across a Delete:
// a later Set is not a rollback, a replayed older record is.
func (s *Store) Delete(ctx context.Context, authType string) error {
	_, err := s.write(ctx, "delete", authType, decide.Delete())
	return err
}

// current is the record a writer found under the lock.
type current struct {
	path    string // the record file
	exists  bool
	auth    sessionstore.AuthObject
	seq     uint64 // 0 if unknown
	written time.Time
	err     error // the record exists but does not open
}

// write runs the write protocol of one record: lock, check the keys,
// read the current record, let fn decide, seal, write durably, unlock.
func (s *Store) write(ctx context.Context, op, authType string,
	decideFn decide.Func) (sessionstore.AuthObject, error) {
	if err := s.checkOpen(op); err != nil {
		return sessionstore.AuthObject{}, err
	}
	stem, err := stemOf(authType)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	// The directory's permissions may have changed since Open: never
	// write into one that others can write to.
	if err := s.checkDir(); err != nil {
		return sessionstore.AuthObject{}, err
	}
	unlock, err := s.lockCurrentKeys(ctx, stem)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	defer unlock()
	ring := s.keys.Load().ring
	path := s.recordPath(stem)
	cur, err := s.readCurrent(ring, authType, path)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	cur.path = path
	next, act, err := decideFn(decide.Current{Exists: cur.exists, Auth: cur.auth, Err: cur.err})
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	if act == decide.Keep {
		return cur.auth.Clone(), nil
	}

	var maxSeq uint64
	if e := s.cache.Get(authType); e != nil {
		maxSeq = e.maxSeq
	}
	now := s.now()
	seq := max(cur.seq+1, maxSeq+1, uint64(max(now.UnixNano(), 0)))

	if act == decide.Remove {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return sessionstore.AuthObject{}, fmt.Errorf("filestore: %w", err)
		}
		if cur.exists {
			if err := fsutil.SyncDir(s.dir); err != nil {
				return sessionstore.AuthObject{}, fmt.Errorf("filestore: %w", err)
			}
		}
		s.cache.Update(authType, func(e entry) entry { return entry{maxSeq: max(e.maxSeq, cur.seq)} })
		return sessionstore.AuthObject{}, nil
	}

	authJSON, err := wire.EncodeAuth(next)
	if err != nil {
		return sessionstore.AuthObject{}, fmt.Errorf("filestore: %s %q: auth object does not encode: %w", op, authType, err)
	}
	defer clear(authJSON)
	if next.Extra != nil {
		// Cache what a reader will decode (JSON numbers as float64 and so
		// on), sharing nothing with the caller.
		if next, err = wire.DecodeAuth(authJSON); err != nil {
			return sessionstore.AuthObject{}, err
		}
	}
	ct, err := ring.Seal(&crypto.Record{AuthType: authType, Seq: seq, Written: now, Auth: authJSON})
	if err != nil {
		return sessionstore.AuthObject{}, fmt.Errorf("filestore: %s: %w", path, err)
	}
	watching := s.watcher.active()
	if err := fsutil.WriteFile(s.dir, stem+recordSuffix, "."+stem+".tmp-0", ct, s.fault); err != nil {
		// The rename may have happened before a later step failed.
		s.forget(authType)
		return sessionstore.AuthObject{}, fmt.Errorf("filestore: writing %s: %w", path, err)
	}
	s.cache.Update(authType, func(entry) entry {
		return entry{ok: true, auth: next, digest: sha256.Sum256(ct), seq: seq, written: now, maxSeq: seq, trusted: watching}
	})
	return next.Clone(), nil
}

// readCurrent reads the record a writer is about to replace. A record
// that does not open is reported in current.err, not as an error: Set
// replaces it, Update returns it.
func (s *Store) readCurrent(ring *crypto.Keyring, authType, path string) (*current, error) {
	s.reads.Add(1)
	data, err := readRecord(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &current{}, nil
	case errors.Is(err, sessionstore.ErrTampered):
		// Oversized: read no further; Set and Delete replace it.
		return &current{exists: true, err: fmt.Errorf("filestore: %w", err)}, nil
	case err != nil:
		return nil, fmt.Errorf("filestore: %w", err)
	}
	d := sha256.Sum256(data)
	e := s.cache.Get(authType)
	if e != nil && e.ok && e.digest == d {
		// Our own last write, or validated: no decryption.
		return &current{exists: true, auth: e.auth, seq: e.seq, written: e.written}, nil
	}
	s.opens.Add(1)
	rec, _, err := ring.Open(data, authType)
	if err != nil {
		return &current{exists: true, err: fmt.Errorf("filestore: %s: %w%s", path, err, s.wrongKeyHint(err))}, nil
	}
	a, err := wire.DecodeAuth(rec.Auth)
	if err != nil {
		return &current{exists: true, seq: rec.Seq, err: fmt.Errorf("filestore: %s: %w", path, err)}, nil
	}
	var maxSeq uint64
	if e != nil {
		maxSeq = e.maxSeq
	}
	if rec.Seq < maxSeq {
		return &current{exists: true, seq: rec.Seq, err: fmt.Errorf("filestore: %s: sequence number went back from %d to %d: %w", path, maxSeq, rec.Seq, sessionstore.ErrRollback)}, nil
	}
	// Keep what was decrypted, for a writer that ends up writing nothing
	// (a TokenSource that finds another process's refresh): the next Get
	// validates it against the file instead of decrypting again.
	s.cache.Update(authType, func(e entry) entry {
		return entry{ok: true, auth: a, digest: d, seq: rec.Seq, written: rec.Written, maxSeq: max(e.maxSeq, rec.Seq)}
	})
	return &current{exists: true, auth: a, seq: rec.Seq, written: rec.Written}, nil
}

// lockCurrentKeys takes stem's lock with the keyring loaded from the key
// file as it stands under that lock: a writer never seals to a retired
// key. Loading a changed key file can be heavy (scrypt, for a
// passphrase-protected one), so it happens with no lock held: the lock is
// released, the keys reloaded, and the lock taken again.
func (s *Store) lockCurrentKeys(ctx context.Context, stem string) (unlock func(), err error) {
	for attempt := 0; ; attempt++ {
		unlock, err := s.lock(ctx, stem)
		if err != nil {
			return nil, err
		}
		changed, err := s.keysChanged()
		if err != nil {
			unlock()
			return nil, err
		}
		if !changed {
			return unlock, nil
		}
		if attempt >= 3 {
			// The key file keeps changing under us: load it under the
			// lock rather than starve.
			if _, err := s.reloadKeys(); err != nil {
				unlock()
				return nil, err
			}
			return unlock, nil
		}
		unlock()
		if _, err := s.reloadKeys(); err != nil {
			return nil, err
		}
	}
}

// lock takes stem's lock file exclusively, honouring ctx.
func (s *Store) lock(ctx context.Context, stem string) (unlock func(), err error) {
	release, err := lockFile(ctx, filepath.Join(s.dir, stem+lockSuffix))
	if err != nil {
		return nil, err
	}
	s.locksHeld.Add(1)
	return func() { s.locksHeld.Add(-1); release() }, nil
}

// processLocks holds one in-process lock per lock file path: goroutines of
// this process (of any Store) queue on it and hand the lock over directly,
// so only one of them at a time waits on the file lock.
var processLocks sync.Map // path → chan struct{} (capacity 1)

// lockFile takes the flock on path (creating it 0600, never through a
// symlink, never blocking on a FIFO), waiting until ctx is done. Waiters
// are woken when the lock is released, without polling: goroutines of
// this process through an in-process lock, other processes by the kernel
// (a blocking flock). A waiter whose ctx ends returns at once; its pending
// flock is released as soon as it is granted.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	v, _ := processLocks.LoadOrStore(path, make(chan struct{}, 1))
	inProc := v.(chan struct{})
	select {
	case inProc <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("filestore: lock %s: %w", path, ctx.Err())
	}
	releaseInProc := func() { <-inProc }

	release, err := fileLock(ctx, path)
	if err != nil {
		releaseInProc()
		return nil, err
	}
	return func() {
		release()
		releaseInProc()
	}, nil
}
