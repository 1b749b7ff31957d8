package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// ReadRegularChecked reads the regular file at path as ReadRegular does,
// first handing the file it opened to check (its mode, its owner through
// Sys), and failing with check's error. It gives no FileID. A buffer it
// drops is cleared first: a key file's bytes are secret.
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
	buf := make([]byte, fi.Size()+1) // +1: see a file that grew
	n := 0
	for {
		m, err := f.Read(buf[n:])
		n += m
		if errors.Is(err, io.EOF) || err == nil && int64(n) == fi.Size() {
			if int64(n) > limit { // it grew past limit while read
				clear(buf)
				return nil, FileID{}, fmt.Errorf("%s: %w", path, ErrTooLarge)
			}
			return buf[:n], FileID{}, nil // a short read at the size: the end
		}
		if err != nil {
			clear(buf)
			return nil, FileID{}, err
		}
		if n == len(buf) {
			if buf, err = grow(buf, limit); err != nil {
				return nil, FileID{}, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
}

// grow returns a full buf doubled, clearing the old one, or ErrTooLarge
// past limit.
func grow(buf []byte, limit int64) ([]byte, error) {
	defer clear(buf)
	if int64(len(buf)) > limit {
		return nil, ErrTooLarge
	}
	return append(make([]byte, 0, 2*len(buf)), buf...)[:2*len(buf)], nil
}
