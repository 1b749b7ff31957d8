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
// that cannot be opened because it is corrupt, oversized, truncated or
// forged. Over a well-formed record sealed to a key this Store does not
// hold, it returns an error wrapping sessionstore.ErrWrongKey and changes
// nothing: the Store's keys are probably stale (a rotation happened), and
// the record may be fine for every other process.
func (s *Store) Set(ctx context.Context, authType string, auth sessionstore.AuthObject) error {
	_, err := s.write(ctx, "set", authType, decide.Set(auth), &auth)
	return err
}

// Update runs fn on the session stored under authType (exists is false if
// there is none) and stores what it returns, holding the record's lock
// throughout: no update is lost, across goroutines or processes. If fn
// returns an error nothing is written and Update returns it. A record that
// cannot be opened makes Update fail without calling fn.
func (s *Store) Update(ctx context.Context, authType string,
	fn func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error)) (sessionstore.AuthObject, error) {
	return s.write(ctx, "update", authType, decide.Update(fn), nil)
}

// Delete removes the session stored under authType, whatever the record
// holds (even one that does not open). Deleting a missing record is not an
// error. Sequence numbers keep growing across a Delete:
// a later Set is not a rollback, a replayed older record is.
func (s *Store) Delete(ctx context.Context, authType string) error {
	_, err := s.write(ctx, "delete", authType, decide.Delete(), nil)
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
//
// A Set knows what it stores before it sees the current record (set is
// its value; nil for Update and Delete): it seals before taking the lock,
// so that a writer waiting for the lock encrypts while another one writes,
// and holds the lock for reading and writing alone. What it sealed is used
// if it still fits under the lock: sealed to the keys loaded there, with a
// sequence number above the current record's, and not long ago. Otherwise
// it seals again, under the lock. A Set needs no value from the current
// record either: the writers' note may vouch for it (note.go).
func (s *Store) write(ctx context.Context, op, authType string,
	decideFn decide.Func, set *sessionstore.AuthObject) (sessionstore.AuthObject, error) {
	if err := s.checkOpen(op); err != nil {
		return sessionstore.AuthObject{}, err
	}
	stem, err := stemOf(authType)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	// The directory's permissions may have changed since Open: never
	// write into one that others can write to.
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
	cur, err := s.readCurrent(ring, authType, path, n)
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

	if act == decide.Remove {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return sessionstore.AuthObject{}, fmt.Errorf("filestore: %w", err)
		}
		if cur.exists {
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
		s.cache.Update(authType, func(e entry) entry { return entry{maxSeq: max(e.maxSeq, cur.seq)} })
		return sessionstore.AuthObject{}, nil
	}

	minSeq := max(cur.seq, s.maxSeq(authType)) + 1
	rec := pre
	if rec == nil || rec.ring != ring || rec.seq < minSeq || s.now().Sub(rec.written) > maxSealAge {
		if rec, err = s.seal(ring, op, path, authType, next, minSeq); err != nil {
			return sessionstore.AuthObject{}, err
		}
		defer rec.clear()
	}
	dir, done, err := s.openDir(dirInfo)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	watching := s.watcher.active()
	digest := sha256.Sum256(rec.ct)
	if watching {
		// The watcher sees the rename before the entry below is in place:
		// tell it the new bytes are this Store's own.
		s.writing.Store(authType, &digest)
		defer s.writing.Delete(authType)
	}
	err = fsutil.WriteFileIn(dir, stem+recordSuffix, "."+stem+".tmp-0", rec.ct, s.fault)
	done()
	if err != nil {
		// The rename may have happened before a later step failed.
		s.forget(authType)
		return sessionstore.AuthObject{}, fmt.Errorf("filestore: writing %s: %w", path, err)
	}
	s.cache.Update(authType, func(entry) entry {
		return entry{ok: true, auth: rec.auth, digest: digest, seq: rec.seq, written: rec.written, maxSeq: rec.seq, trusted: watching}
	})
	lockFD.writeNote((&note{digest: digest, seq: rec.seq, fp: rec.fp}).marshal())
	return rec.auth.Clone(), nil
}

// maxSealAge bounds how long before the write a Set may have sealed its
// record (its written time): a Set that waited longer for the lock seals
// again.
const maxSealAge = 250 * time.Millisecond

// sealSlots bounds how many Sets of this process have sealed ahead and
// wait for their lock: more than GOMAXPROCS would take the CPU from the
// lock holder, and the more Sets seal at once, the more of them take the
// lock in another order than they sealed in, and must seal again (their
// sequence number is then too low).
var sealSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// sealAhead seals a Set's value before its lock is taken (see write); done
// gives its slot back, once the lock is taken.
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
	now := s.now()
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

// readCurrent reads the record a writer is about to replace. A record
// that does not open is reported in current.err, not as an error: Set
// replaces it, Update returns it. If n vouches for the record (a Set's
// note), it is not decrypted: current.auth is then empty.
func (s *Store) readCurrent(ring *crypto.Keyring, authType, path string, n *note) (*current, error) {
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
	if n.vouchesFor(d, ring, s.now()) {
		return &current{exists: true, seq: n.seq}, nil
	}
	rec, _, err := envelope.Open(ring, data, "", authType)
	if err != nil {
		return &current{exists: true, err: fmt.Errorf("filestore: %s: %w%s", path, err, s.keys.WrongKeyHint(err))}, nil
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
func (s *Store) lockCurrentKeys(ctx context.Context, stem string) (unlock func(), fd lockFD, err error) {
	for attempt := 0; ; attempt++ {
		unlock, fd, err := s.lock(ctx, stem)
		if err != nil {
			return nil, noNote, err
		}
		changed, err := s.keys.Changed()
		if err != nil {
			unlock()
			return nil, noNote, err
		}
		if !changed {
			return unlock, fd, nil
		}
		if attempt >= 3 {
			// The key file keeps changing under us: load it under the
			// lock rather than starve.
			if _, err := s.keys.Reload(); err != nil {
				unlock()
				return nil, noNote, err
			}
			return unlock, fd, nil
		}
		unlock()
		if _, err := s.keys.Reload(); err != nil {
			return nil, noNote, err
		}
	}
}

// lock takes stem's lock file exclusively, honouring ctx. It also returns
// the lock file's descriptor, where the writers' note is.
func (s *Store) lock(ctx context.Context, stem string) (unlock func(), fd lockFD, err error) {
	return lockFile(ctx, s.lockPath(stem))
}

// processLocks holds one in-process lock per lock file path: goroutines
// of this process (of any Store) queue on it, so only one of them at a
// time waits on the file lock.
var processLocks protocol.Locks

func (s *Store) lockPath(stem string) string { return filepath.Join(s.dir, stem+lockSuffix) }

// lockFile takes the flock on path (creating it 0600, never through a
// symlink, never blocking on a FIFO), waiting until ctx is done. Waiters
// are woken when the lock is released, without polling: goroutines of
// this process through an in-process lock, other processes by the kernel
// (a blocking flock). A waiter whose ctx ends returns at once; its pending
// flock is released as soon as it is granted.
func lockFile(ctx context.Context, path string) (unlock func(), fd lockFD, err error) {
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
