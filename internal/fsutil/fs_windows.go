//go:build windows

package fsutil

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/sessionstore/sessionstore"
)

// OpenNoFollow opens path for reading; if path is a symlink it fails
// instead of following it. On Windows the check is an Lstat before the
// open, which is best effort.
func OpenNoFollow(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "open", Path: path, Err: ErrSymlink}
	}
	return os.Open(path)
}

// createPrivate creates path with O_EXCL.
func createPrivate(path string) (tempFile, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// CheckPrivateFile checks that fi is a regular file. Windows has no POSIX
// modes: access is governed by ACLs, which the user's profile directory
// already restricts.
func CheckPrivateFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file: %w", path, sessionstore.ErrInsecurePermissions)
	}
	return nil
}

// CheckTrustedFile checks that fi is a regular file.
func CheckTrustedFile(path string, fi fs.FileInfo) error { return CheckPrivateFile(path, fi) }

// CheckPrivateDirFor is CheckPrivateDir; Windows has no uid.
func CheckPrivateDirFor(path string, fi fs.FileInfo, uid int) error { return CheckPrivateDir(path, fi) }

// CheckPrivateDir checks that fi is a directory.
func CheckPrivateDir(path string, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", path)
	}
	return nil
}

func rename(from, to string) error { return os.Rename(from, to) }
