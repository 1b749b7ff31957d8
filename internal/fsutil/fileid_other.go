//go:build !linux && !darwin

package fsutil

import (
	"io/fs"
	"os"
)

// IDOf gives no FileID here: callers compare contents instead.
func IDOf(fi fs.FileInfo) (id FileID, ok bool) { return FileID{}, false }

// StatID stats path; with no FileID on this platform, it never matches.
func StatID(path string) (FileID, error) {
	_, err := os.Lstat(path)
	return FileID{}, err
}
