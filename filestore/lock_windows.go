//go:build windows

package filestore

import (
	"context"
	"fmt"
	"os"

	"github.com/gofrs/flock"

	"github.com/sessionstore/sessionstore"
)

// lockFlag opens a lock file, creating it.
const lockFlag = os.O_CREATE | os.O_RDONLY

// fileLock takes the lock on path, creating it, waiting until ctx is done.
func fileLock(ctx context.Context, path string) (func(), lockFD, error) {
	lk := flock.New(path, flock.SetFlag(lockFlag), flock.SetPermissions(0o600))
	ok, err := lk.TryLock()
	if err != nil {
		return nil, noNote, fmt.Errorf("filestore: lock %s: %w", path, err)
	}
	if !ok {
		granted := make(chan error, 1)
		go func() { granted <- lk.Lock() }()
		select {
		case err = <-granted:
		case <-ctx.Done():
			go func() {
				if <-granted == nil {
					lk.Unlock()
				}
			}()
			return nil, noNote, fmt.Errorf("filestore: lock %s: %w", path, ctx.Err())
		}
		if err != nil {
			return nil, noNote, fmt.Errorf("filestore: lock %s: %w", path, err)
		}
	}
	fi, err := lk.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		lk.Unlock()
		if err == nil {
			err = fmt.Errorf("%s is not a regular file: %w", path, sessionstore.ErrInsecurePermissions)
		}
		return nil, noNote, fmt.Errorf("filestore: lock %w", err)
	}
	return func() { lk.Unlock() }, noNote, nil
}

// A lockFD would hold the writers' note; on Windows there is none, and
// every writer reads the current record in full.
type lockFD int

const noNote lockFD = -1

func (lockFD) readNote([]byte) int { return 0 }
func (lockFD) writeNote([]byte)    {}
