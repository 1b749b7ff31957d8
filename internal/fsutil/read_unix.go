//go:build linux || darwin

package fsutil

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// ReadRegular reads the file at path with raw system calls (open, fstat,
// read, close: no poller registration): never through a symlink
// (ErrSymlink), never blocking on a FIFO, only a regular file
// (ErrNotRegular), at most limit bytes (ErrTooLarge). It returns the
// identity of the file it read.
func ReadRegular(path string, limit int64) ([]byte, FileID, error) {
	return ReadRegularChecked(path, limit, nil)
}

// ReadRegularChecked is ReadRegular that first hands the file it opened to
// check (its mode, its owner through Sys), and fails with check's error.
// A buffer that has to grow is cleared before it is dropped: a key file's
// bytes are secret.
func ReadRegularChecked(path string, limit int64, check func(fs.FileInfo) error) ([]byte, FileID, error) {
	fd, err := openRetry(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC)
	if err != nil {
		if err == syscall.ELOOP {
			err = ErrSymlink
		}
		return nil, FileID{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, FileID{}, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if check != nil {
		if err := check(statInfo{name: filepath.Base(path), st: &st}); err != nil {
			return nil, FileID{}, err
		}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, FileID{}, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	if st.Size > limit {
		return nil, FileID{}, fmt.Errorf("%s is %d bytes: %w", path, st.Size, ErrTooLarge)
	}
	buf := make([]byte, st.Size+1) // +1: see a file that grew
	n := 0
	for {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			clear(buf)
			return nil, FileID{}, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		short := m < len(buf)-n
		n += m
		if short && int64(n) == st.Size {
			break // a short read of a regular file at its size: the end
		}
		if n == len(buf) {
			if int64(n) > limit {
				clear(buf)
				return nil, FileID{}, fmt.Errorf("%s: %w", path, ErrTooLarge)
			}
			grown := make([]byte, 2*len(buf))
			copy(grown, buf)
			clear(buf)
			buf = grown
		}
	}
	return buf[:n], idOfStat(&st), nil
}

// statInfo is the fs.FileInfo of a raw fstat, as os.File.Stat gives it.
type statInfo struct {
	name string
	st   *syscall.Stat_t
}

func (fi statInfo) Name() string       { return fi.name }
func (fi statInfo) Size() int64        { return fi.st.Size }
func (fi statInfo) ModTime() time.Time { return time.Unix(0, idOfStat(fi.st).Mtime) }
func (fi statInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi statInfo) Sys() any           { return fi.st }

func (fi statInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	}
	if fi.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
