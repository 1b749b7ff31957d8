//go:build !windows

package fsutil

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/sessionstore/sessionstore"
)

// OpenNoFollow opens path for reading; if path is a symlink it fails
// instead of following it. It never blocks: a FIFO opens at once (the
// caller checks the type before reading).
func OpenNoFollow(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if pe, ok := err.(*fs.PathError); ok && pe.Err == syscall.ELOOP {
			return nil, &fs.PathError{Op: "open", Path: path, Err: ErrSymlink}
		}
		return nil, err
	}
	return f, nil
}

// CheckPrivateFile returns an error wrapping sessionstore.ErrInsecurePermissions if fi is not a
// regular file, is accessible by group or others, or is owned by another
// user than the current one or root.
func CheckPrivateFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%v): %w", path, fi.Mode().Type(), sessionstore.ErrInsecurePermissions)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s is accessible by group or others (mode %04o, want 0600): %w", path, perm, sessionstore.ErrInsecurePermissions)
	}
	return checkOwner(path, fi)
}

// CheckTrustedFile returns an error wrapping ErrInsecurePermissions if fi
// is not a regular file, is writable by group or others, or is owned by
// another user than the current one or root: a file others may read but
// must not change (a recipients file).
func CheckTrustedFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%v): %w", path, fi.Mode().Type(), sessionstore.ErrInsecurePermissions)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %04o): %w", path, perm, sessionstore.ErrInsecurePermissions)
	}
	return checkOwner(path, fi)
}

// CheckPrivateDir returns an error wrapping sessionstore.ErrInsecurePermissions if fi is not a
// directory, is writable by group or others, or is owned by another user
// than the current one or root.
func CheckPrivateDir(path string, fi fs.FileInfo) error {
	return CheckPrivateDirFor(path, fi, os.Geteuid())
}

// CheckPrivateDirFor is CheckPrivateDir for the user uid (a Store checks
// against the user that opened it, without a geteuid call per write).
func CheckPrivateDirFor(path string, fi fs.FileInfo, uid int) error {
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", path)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %04o, want 0700): %w", path, perm, sessionstore.ErrInsecurePermissions)
	}
	return checkOwnerIs(path, fi, uid)
}

func checkOwner(path string, fi fs.FileInfo) error { return checkOwnerIs(path, fi, os.Geteuid()) }

func checkOwnerIs(path string, fi fs.FileInfo, uid int) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) != uid && st.Uid != 0 {
		return fmt.Errorf("%s is owned by uid %d, not by this user (uid %d) or root: %w", path, st.Uid, uid, sessionstore.ErrInsecurePermissions)
	}
	return nil
}
