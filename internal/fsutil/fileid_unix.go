//go:build linux || darwin

package fsutil

import (
	"io/fs"

	"golang.org/x/sys/unix"
)

// StatID returns the FileID of path, without following a symlink, with one
// fstatat(2).
func StatID(path string) (FileID, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return FileID{}, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return FileID{}, nil // never equal to a record's
	}
	return idOfStat(&st), nil
}

func idOfStat(st *unix.Stat_t) FileID {
	return FileID{
		Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: st.Size,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(),
	}
}
