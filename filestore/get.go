package filestore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/fsutil"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// Get returns the session stored under authType, or an error wrapping
// sessionstore.ErrNotFound. The value is the caller's: changing it changes
// nothing stored. A cached value costs no I/O and, unless it has Extra, no
// allocation.
func (s *Store) Get(ctx context.Context, authType string) (sessionstore.AuthObject, error) {
	if e := s.cache.Get(authType); e != nil && e.trusted && !s.closed.Load() {
		if e.auth.Extra == nil {
			return e.auth, nil
		}
		return e.auth.Clone(), nil
	}
	if s.closed.Load() {
		return sessionstore.AuthObject{}, fmt.Errorf("filestore: get %q: %w", authType, sessionstore.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return sessionstore.AuthObject{}, err
	}
	stem, err := stemOf(authType)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	a, err := s.load(authType, stem) // zero with an error
	return a.Clone(), err
}

// load reads the record file of name and returns its value, from the cache
// if the file still holds the cached bytes, and caches it. A rollback
// error is retried while the file no longer holds the record it read: that
// load was merely late, another one having cached a newer record.
func (s *Store) load(name, stem string) (sessionstore.AuthObject, error) {
	for attempt := 0; ; attempt++ {
		a, read, err := s.loadFile(name, stem)
		if attempt < 3 && errors.Is(err, sessionstore.ErrRollback) {
			if now, rerr := readRecord(s.recordPath(stem)); rerr != nil || sha256.Sum256(now) != read {
				continue
			}
		}
		return a, err
	}
}

// loadFile is load's work; read is the digest of the bytes it read.
func (s *Store) loadFile(name, stem string) (_ sessionstore.AuthObject, read [sha256.Size]byte, _ error) {
	path := s.recordPath(stem)
	watching := s.watcher.active()
	before := s.events.Load()

	// The cheapest validation: the file is the one whose bytes were read,
	// long enough after it was written for its identity to tell.
	if e := s.cache.Get(name); e != nil && e.ok && e.idSafe && !s.remote {
		if id, err := fsutil.StatID(path); err == nil && id == e.id {
			s.validated(name, e, id, true, watching, before)
			return e.auth, e.digest, nil
		}
	}

	data, id, err := readRecordID(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.forget(name)
			return sessionstore.AuthObject{}, read, fmt.Errorf("filestore: %s: %w", path, sessionstore.ErrNotFound)
		}
		return sessionstore.AuthObject{}, read, fmt.Errorf("filestore: %w", err)
	}
	d := sha256.Sum256(data)
	read = d

	idSafe := !s.remote && id.SafeAt(time.Now())
	if e := s.cache.Get(name); e != nil && e.ok && e.digest == d {
		s.validated(name, e, id, idSafe, watching, before)
		return e.auth, e.digest, nil
	}

	// If no identity opens the record, the key file is reloaded once: a
	// rotation may just have happened.
	rec, _, err := envelope.Open(s.keys.Ring(), data, "", name)
	if errors.Is(err, sessionstore.ErrWrongKey) {
		if changed, rerr := s.keys.Reload(); rerr == nil && changed {
			rec, _, err = envelope.Open(s.keys.Ring(), data, "", name)
		}
	}
	if err != nil {
		return sessionstore.AuthObject{}, read, fmt.Errorf("filestore: %s: %w%s", path, err, s.keys.WrongKeyHint(err))
	}
	a, err := wire.DecodeAuth(rec.Auth)
	if err != nil {
		return sessionstore.AuthObject{}, read, fmt.Errorf("filestore: %s: %w", path, err)
	}
	var rollback uint64
	s.cache.Update(name, func(e entry) entry {
		if rec.Seq < e.maxSeq {
			rollback = e.maxSeq
			return e
		}
		return entry{ok: true, auth: a, digest: d, seq: rec.Seq, maxSeq: rec.Seq,
			trusted: watching && s.events.Load() == before, id: id, idSafe: idSafe}
	})
	if rollback != 0 {
		return sessionstore.AuthObject{}, read, fmt.Errorf("filestore: %s: sequence number went back from %d to %d: %w", path, rollback, rec.Seq, sessionstore.ErrRollback)
	}
	return a, read, nil
}

// validated notes that the file, of identity id, still holds e's bytes:
// e is trusted if the watcher was up before the validation and saw no
// change since (checked under the cache's lock, which orders it with the
// watcher's invalidations). It starts the watcher: e is worth watching.
func (s *Store) validated(name string, e *entry, id fsutil.FileID, idSafe, watching bool, before uint64) {
	defer s.watcher.start(s)
	if (e.trusted || !watching) && e.id == id && e.idSafe == idSafe {
		return
	}
	s.cache.UpdateExisting(name, func(cur entry) entry {
		if cur.ok && cur.digest == e.digest {
			cur.id, cur.idSafe = id, idSafe
			cur.trusted = cur.trusted || watching && s.events.Load() == before
		}
		return cur
	})
}

// forget drops name's cached value, keeping its highest sequence number.
func (s *Store) forget(name string) {
	s.cache.UpdateExisting(name, entry.forgotten)
}

// readRecord reads a record file without following a symlink.
func readRecord(path string) ([]byte, error) {
	data, _, err := readRecordID(path)
	return data, err
}

// readRecordID reads a record file without following a symlink or
// blocking, and returns the identity of the file it read.
func readRecordID(path string) ([]byte, fsutil.FileID, error) {
	data, id, err := fsutil.ReadRegular(path, maxRecordSize)
	switch {
	case err == nil:
		return data, id, nil
	case errors.Is(err, fsutil.ErrSymlink):
		return nil, id, fmt.Errorf("%s is a symlink, not followed: %w", path, sessionstore.ErrInsecurePermissions)
	case errors.Is(err, fsutil.ErrNotRegular):
		return nil, id, fmt.Errorf("%s is not a regular file: %w", path, sessionstore.ErrInsecurePermissions)
	case errors.Is(err, fsutil.ErrTooLarge):
		return nil, id, fmt.Errorf("%s is larger than any record: %w", path, sessionstore.ErrTampered)
	}
	return nil, id, err
}
