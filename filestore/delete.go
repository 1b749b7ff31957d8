package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// Remove deletes the session stored under authType in the store directory
// dir without a key (whoever may write the directory may remove a record,
// even one sealed to a lost key or one that does not open), under the
// record's lock, as Store.Delete does. Unlike Delete, it reports a missing
// record: an error wrapping sessionstore.ErrNotFound. dir must exist and be
// private to this user. Whatever is in the record's place (a record, a
// symlink or FIFO planted there) is removed, never followed; a directory
// there is an error.
func Remove(ctx context.Context, dir, authType string) error {
	stem, err := stemOf(authType)
	if err != nil {
		return err
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if err := checkStoreDir(dir); err != nil {
		return err
	}
	path := filepath.Join(dir, stem+recordSuffix)
	notFound := func() error {
		return fmt.Errorf("filestore: remove %s: %w", path, sessionstore.ErrNotFound)
	}
	// A name that is not stored creates no lock file.
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return notFound()
	}
	unlock, _, err := lockFile(ctx, dir, stem)
	if err != nil {
		return err
	}
	defer unlock()
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return notFound() // deleted by another process meanwhile
	case err != nil:
		return fmt.Errorf("filestore: %w", err)
	case fi.IsDir():
		return fmt.Errorf("filestore: remove %s: a directory, not a record", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	return nil
}
