package fsutil

import (
	"io/fs"
	"syscall"
)

// StatID returns the FileID of path, without following a symlink.
func StatID(path string) (FileID, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return FileID{}, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return FileID{}, nil
	}
	return idOfStat(&st), nil
}

func idOfStat(st *syscall.Stat_t) FileID {
	return FileID{
		Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtimespec.Nano(), Ctime: st.Ctimespec.Nano(),
	}
}
