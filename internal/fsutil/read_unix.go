//go:build linux || darwin

package fsutil

import (
	"fmt"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// ReadRegular reads the file at path with raw system calls (open, fstat,
// read, close: no poller registration): never through a symlink
// (ErrSymlink), never blocking on a FIFO, only a regular file
// (ErrNotRegular), at most limit bytes (ErrTooLarge). It returns the
// identity of the file it read.
func ReadRegular(path string, limit int64) ([]byte, FileID, error) {
	fd, err := openRetry(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC)
	if err != nil {
		if err == syscall.ELOOP {
			err = ErrSymlink
		}
		return nil, FileID{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, FileID{}, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
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
			if buf, err = grow(buf, limit); err != nil {
				return nil, FileID{}, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	return buf[:n], idOfStat(&st), nil
}
