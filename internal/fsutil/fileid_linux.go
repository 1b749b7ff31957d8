package fsutil

import (
	"io/fs"
	"syscall"
)

// StatID returns the FileID of path, without following a symlink, with one
// fstatat(2).
func StatID(path string) (FileID, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return FileID{}, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return FileID{}, nil // never equal to a record's
	}
	return idOfStat(&st), nil
}

func idOfStat(st *syscall.Stat_t) FileID {
	return FileID{
		Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: st.Size,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(),
	}
}
