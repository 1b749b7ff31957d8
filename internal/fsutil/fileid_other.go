//go:build !linux && !darwin

package fsutil

import (
	"os"
)

// StatID stats path; with no FileID on this platform, it never matches.
func StatID(path string) (FileID, error) {
	_, err := os.Lstat(path)
	return FileID{}, err
}
