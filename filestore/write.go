package filestore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/decide"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/fsutil"
	"github.com/sessionstore/sessionstore/internal/protocol"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// Set stores auth under authType, replacing what was there, even a record
// that is corrupt, oversized, truncated or forged. Over a well-formed
// record sealed to a key this Store does not hold it returns an error
// wrapping sessionstore.ErrWrongKey and changes nothing.
func (s *Store) Set(ctx context.Context, authType string, auth sessionstore.AuthObject) error {
	_, err := s.write(ctx, "set", authType, decide.Set(auth), &auth)
	return err
}

// Update runs fn on the session stored under authType (exists is false if
// there is none) and stores what it returns, holding the record's lock
// across goroutines and processes. If fn returns an error, or a value Equal
// to cur, nothing is written. A record that does not open makes Update fail
// without calling fn.
func (s *Store) Update(ctx context.Context, authType string,
	fn func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error)) (sessionstore.AuthObject, error) {
	return s.write(ctx, "update", authType, decide.Update(fn), nil)
}

// Delete removes the session stored under authType, whatever the record
// holds. Deleting a missing record is not an error. A replayed older record
// is still a rollback after a Delete.
func (s *Store) Delete(ctx context.Context, authType string) error {
	_, err := s.write(ctx, "delete", authType, decide.Delete(), nil)
	return err
}

// write runs the write protocol of one record: lock, check the keys, read
// the current record, decide, seal, write durably, unlock. A Set (set not
// nil) seals ahead of the lock, and seals again under it if that no longer
// fits; the writers' note may spare it decrypting the current record.
func (s *Store) write(ctx context.Context, op, authType string,
	decideFn decide.Func, set *sessionstore.AuthObject) (sessionstore.AuthObject, error) {
	if err := s.checkOpen(op); err != nil {
		return sessionstore.AuthObject{}, err
	}
	stem, err := stemOf(authType)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	// Never write into a directory that others can write to.
	dirInfo, err := s.checkDir()
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	path := s.recordPath(stem)
	var pre *sealed
	done := func() {}
	if set != nil {
		if pre, done, err = s.sealAhead(ctx, op, path, authType, *set); err != nil {
			return sessionstore.AuthObject{}, err
		}
		defer pre.clear()
	}
	unlock, lockFD, err := s.lockCurrentKeys(ctx, stem)
	done()
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	defer unlock()
	ring := s.keys.Ring()
	var n *note
	if set != nil {
		n = readNote(lockFD)
	}
	cur, curSeq, err := s.readCurrent(ring, authType, path, n)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	next, act, err := decideFn(cur)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	if act == decide.Keep {
		return cur.Auth.Clone(), nil
	}

	if act == decide.Remove {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return sessionstore.AuthObject{}, fmt.Errorf("filestore: %w", err)
		}
		if cur.Exists {
			dir, done, err := s.openDir(dirInfo)
			if err != nil {
				return sessionstore.AuthObject{}, err
			}
			err = dir.Sync()
			done()
			if err != nil {
				return sessionstore.AuthObject{}, fmt.Errorf("filestore: %w", err)
			}
		}
		s.cache.Update(authType, func(e entry) entry { return entry{maxSeq: max(e.maxSeq, curSeq)} })
		return sessionstore.AuthObject{}, nil
	}

	minSeq := max(curSeq, s.maxSeq(authType)) + 1
	rec := pre
	if rec == nil || rec.ring != ring || rec.seq < minSeq || time.Since(rec.written) > maxSealAge {
		if rec, err = s.seal(ring, op, path, authType, next, minSeq); err != nil {
			return sessionstore.AuthObject{}, err
		}
		defer rec.clear()
	}
	watching := s.watcher.active()
	digest := sha256.Sum256(rec.ct)
	if err := s.writeRecord(dirInfo, stem, rec.ct); err != nil {
		s.forget(authType) // the rename may have happened before a later step failed
		return sessionstore.AuthObject{}, err
	}
	s.cache.Update(authType, func(entry) entry {
		return entry{ok: true, auth: rec.auth, digest: digest, seq: rec.seq, maxSeq: rec.seq, trusted: watching}
	})
	lockFD.writeNote((&note{digest: digest, seq: rec.seq, fp: rec.fp}).marshal())
	return rec.auth.Clone(), nil
}

// writeRecord durably replaces stem's record with ct.
func (s *Store) writeRecord(dirInfo fs.FileInfo, stem string, ct []byte) error {
	dir, done, err := s.openDir(dirInfo)
	if err != nil {
		return err
	}
	defer done()
	if err := fsutil.WriteFileIn(dir, stem+recordSuffix, "."+stem+".tmp-0", ct, s.fault); err != nil {
		return fmt.Errorf("filestore: writing %s: %w", s.recordPath(stem), err)
	}
	return nil
}

// maxSealAge bounds how long before its write a Set may have sealed.
const maxSealAge = 250 * time.Millisecond

// sealSlots bounds the Sets of this process that have sealed ahead and
// wait for their lock: more would take the CPU from the lock holder, and
// take the lock out of order, having to seal again.
var sealSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// sealAhead seals a Set's value before its lock is taken; done gives its
// slot back.
func (s *Store) sealAhead(ctx context.Context, op, path, authType string, a sessionstore.AuthObject) (rec *sealed, done func(), err error) {
	select {
	case sealSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("filestore: %s %q: %w", op, authType, ctx.Err())
	}
	done = func() { <-sealSlots }
	if rec, err = s.seal(s.keys.Ring(), op, path, authType, a, s.maxSeq(authType)+1); err != nil {
		done()
		return nil, nil, err
	}
	return rec, done, nil
}

// A sealed is a record sealed for a write.
type sealed struct {
	ring    *crypto.Keyring // the keys it was sealed with
	auth    sessionstore.AuthObject
	seq     uint64
	written time.Time
	ct      []byte
	fp      string // the fingerprint of ring's primary, for the note
}

func (r *sealed) clear() { clear(r.ct) }

// seal seals a for authType with ring, with a sequence number of at least
// minSeq: the write's time in nanoseconds, unless minSeq is higher.
func (s *Store) seal(ring *crypto.Keyring, op, path, authType string, a sessionstore.AuthObject, minSeq uint64) (*sealed, error) {
	authJSON, err := wire.EncodeAuth(a)
	if err != nil {
		return nil, fmt.Errorf("filestore: %s %q: auth object does not encode: %w", op, authType, err)
	}
	defer clear(authJSON)
	if a.Extra != nil {
		// Cache what a reader will decode (JSON numbers as float64 and so
		// on), sharing nothing with the caller.
		if a, err = wire.DecodeAuth(authJSON); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	seq := max(minSeq, uint64(max(now.UnixNano(), 0)))
	ct, err := envelope.Seal(ring, &envelope.Record{Version: wire.VersionOf(a), AuthType: authType, Seq: seq, Written: now, Auth: authJSON})
	if err != nil {
		return nil, fmt.Errorf("filestore: %s: %w", path, err)
	}
	return &sealed{ring: ring, auth: a, seq: seq, written: now, ct: ct, fp: ring.Fingerprint(0)}, nil
}

// maxSeq returns the highest sequence number seen for authType.
func (s *Store) maxSeq(authType string) uint64 {
	if e := s.cache.Get(authType); e != nil {
		return e.maxSeq
	}
	return 0
}

// readCurrent reads the record a writer is about to replace, and its
// sequence number (0 if unknown). A record that does not open is reported
// in Err: Set replaces it, Update returns it. A record n vouches for is not
// decrypted (Auth empty).
func (s *Store) readCurrent(ring *crypto.Keyring, authType, path string, n *note) (decide.Current, uint64, error) {
	data, err := readRecord(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return decide.Current{}, 0, nil
	case errors.Is(err, sessionstore.ErrTampered):
		// Oversized: read no further; Set and Delete replace it.
		return decide.Current{Exists: true, Err: fmt.Errorf("filestore: %w", err)}, 0, nil
	case err != nil:
		return decide.Current{}, 0, fmt.Errorf("filestore: %w", err)
	}
	d := sha256.Sum256(data)
	e := s.cache.Get(authType)
	if e != nil && e.ok && e.digest == d {
		// Our own last write, or validated: no decryption.
		return decide.Current{Exists: true, Auth: e.auth}, e.seq, nil
	}
	if n.vouchesFor(d, ring, time.Now()) {
		return decide.Current{Exists: true}, n.seq, nil
	}
	rec, _, err := envelope.Open(ring, data, "", authType)
	if err != nil {
		return decide.Current{Exists: true, Err: fmt.Errorf("filestore: %s: %w%s", path, err, s.keys.WrongKeyHint(err))}, 0, nil
	}
	a, err := wire.DecodeAuth(rec.Auth)
	if err != nil {
		return decide.Current{Exists: true, Err: fmt.Errorf("filestore: %s: %w", path, err)}, rec.Seq, nil
	}
	if maxSeq := s.maxSeq(authType); rec.Seq < maxSeq {
		return decide.Current{Exists: true, Err: fmt.Errorf("filestore: %s: sequence number went back from %d to %d: %w", path, maxSeq, rec.Seq, sessionstore.ErrRollback)}, rec.Seq, nil
	}
	// Cached for a writer that ends up writing nothing (a TokenSource
	// that finds another process's refresh).
	s.cache.Update(authType, func(e entry) entry {
		return entry{ok: true, auth: a, digest: d, seq: rec.Seq, maxSeq: max(e.maxSeq, rec.Seq)}
	})
	return decide.Current{Exists: true, Auth: a}, rec.Seq, nil
}

// lockCurrentKeys takes stem's lock with the keys as the key file stands
// under that lock. A changed key file is loaded with the lock released:
// loading can be heavy (scrypt).
func (s *Store) lockCurrentKeys(ctx context.Context, stem string) (unlock func(), fd lockFD, err error) {
	for attempt := 0; ; attempt++ {
		unlock, fd, err := lockFile(ctx, s.dir, stem)
		if err != nil {
			return nil, noNote, err
		}
		changed, err := s.keys.Changed()
		if err == nil && changed && attempt >= 3 {
			// The key file keeps changing: load it under the lock rather
			// than starve.
			_, err = s.keys.Reload()
			changed = false
		}
		if err == nil && !changed {
			return unlock, fd, nil
		}
		unlock()
		if err != nil {
			return nil, noNote, err
		}
		if _, err := s.keys.Reload(); err != nil {
			return nil, noNote, err
		}
	}
}

// processLocks holds one in-process lock per lock file: goroutines of
// this process queue there, so that one at a time waits on the flock.
var processLocks protocol.Locks

// lockFile takes stem's lock in dir, waiting until ctx is done.
func lockFile(ctx context.Context, dir, stem string) (unlock func(), fd lockFD, err error) {
	path := filepath.Join(dir, stem+lockSuffix)
	releaseInProc, err := processLocks.Lock(ctx, path)
	if err != nil {
		return nil, noNote, fmt.Errorf("filestore: lock %s: %w", path, err)
	}
	release, fd, err := fileLock(ctx, path)
	if err != nil {
		releaseInProc()
		return nil, noNote, err
	}
	return func() {
		release()
		releaseInProc()
	}, fd, nil
}
