//go:build !linux && !darwin

package fsutil

import (
	"fmt"
	"io"
	"io/fs"
)

// ReadRegular reads the regular file at path, never through a symlink, at
// most limit bytes. This platform gives no FileID.
func ReadRegular(path string, limit int64) ([]byte, FileID, error) {
	return ReadRegularChecked(path, limit, nil)
}

// ReadRegularChecked is ReadRegular that first hands the file it opened to
// check, and fails with check's error.
func ReadRegularChecked(path string, limit int64, check func(fs.FileInfo) error) ([]byte, FileID, error) {
	f, err := OpenNoFollow(path)
	if err != nil {
		return nil, FileID{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, FileID{}, err
	}
	if check != nil {
		if err := check(fi); err != nil {
			return nil, FileID{}, err
		}
	}
	if !fi.Mode().IsRegular() {
		return nil, FileID{}, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	if fi.Size() > limit {
		return nil, FileID{}, fmt.Errorf("%s is %d bytes: %w", path, fi.Size(), ErrTooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, FileID{}, err
	}
	if int64(len(data)) > limit {
		return nil, FileID{}, fmt.Errorf("%s: %w", path, ErrTooLarge)
	}
	return data, FileID{}, nil
}
