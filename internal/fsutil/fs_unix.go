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

// CheckPrivateFile returns an error wrapping
// sessionstore.ErrInsecurePermissions if fi is not a regular file, is
// accessible by group or others, or is owned by another user than the
// current one or root.
func CheckPrivateFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%v): %w", path, fi.Mode().Type(), sessionstore.ErrInsecurePermissions)
	}
	return checkModeOwner(path, fi, 0o077, "accessible by group or others (mode %04o, want 0600)", os.Geteuid())
}

// CheckTrustedFile is CheckPrivateFile for a file others may read but
// must not change (a recipients file).
func CheckTrustedFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%v): %w", path, fi.Mode().Type(), sessionstore.ErrInsecurePermissions)
	}
	return checkModeOwner(path, fi, 0o022, "writable by group or others (mode %04o)", os.Geteuid())
}

// CheckPrivateDir returns an error wrapping
// sessionstore.ErrInsecurePermissions if fi is not a directory, is
// writable by group or others, or is owned by another user than the
// current one or root.
func CheckPrivateDir(path string, fi fs.FileInfo) error {
	return CheckPrivateDirFor(path, fi, os.Geteuid())
}

// CheckPrivateDirFor is CheckPrivateDir for the user uid.
func CheckPrivateDirFor(path string, fi fs.FileInfo, uid int) error {
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", path)
	}
	return checkModeOwner(path, fi, 0o022, "writable by group or others (mode %04o, want 0700)", uid)
}

// checkModeOwner refuses fi if its mode has a bit of forbidden (say is
// the message, given the mode) or if neither uid nor root owns it.
func checkModeOwner(path string, fi fs.FileInfo, forbidden fs.FileMode, say string, uid int) error {
	if perm := fi.Mode().Perm(); perm&forbidden != 0 {
		return fmt.Errorf("%s is "+say+": %w", path, perm, sessionstore.ErrInsecurePermissions)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid && st.Uid != 0 {
		return fmt.Errorf("%s is owned by uid %d, not by this user (uid %d) or root: %w", path, st.Uid, uid, sessionstore.ErrInsecurePermissions)
	}
	return nil
}
