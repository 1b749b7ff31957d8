//go:build !windows

package filestore

import (
	"context"
	"fmt"
	"syscall"

	"github.com/sessionstore/sessionstore"
)

// fileLock takes the flock on path with raw system calls (closing the
// descriptor releases it), creating the file 0600, never through a
// symlink, never blocking on a FIFO, waiting until ctx is done; an
// abandoned wait closes its descriptor once the lock is granted.
func fileLock(ctx context.Context, path string) (func(), lockFD, error) {
	// Read-write for the writers' note; read-only where the file does
	// not let us write (an odd umask made it 0400): no note then.
	var fd int
	var err error
	for _, mode := range []int{syscall.O_RDWR, syscall.O_RDONLY} {
		for {
			fd, err = syscall.Open(path, mode|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o600)
			if err != syscall.EINTR {
				break
			}
		}
		if err != syscall.EACCES {
			break
		}
	}
	if err == syscall.ELOOP {
		return nil, noNote, fmt.Errorf("filestore: lock %s is a symlink, not followed: %w", path, sessionstore.ErrInsecurePermissions)
	}
	if err != nil {
		return nil, noNote, fmt.Errorf("filestore: lock %s: open: %w", path, err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, noNote, fmt.Errorf("filestore: lock %s: fstat: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, noNote, fmt.Errorf("filestore: lock %s is not a regular file: %w", path, sessionstore.ErrInsecurePermissions)
	}
	// Exactly 0600, whatever the umask.
	if st.Mode&0o777 != 0o600 {
		syscall.Fchmod(fd, 0o600)
	}
	closeFD := func() { syscall.Close(fd) }
	err = flockRetry(fd, syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return closeFD, lockFD(fd), nil
	}
	if err != syscall.EWOULDBLOCK {
		closeFD()
		return nil, noNote, fmt.Errorf("filestore: lock %s: flock: %w", path, err)
	}
	granted := make(chan error, 1)
	go func() { granted <- flockRetry(fd, syscall.LOCK_EX) }()
	select {
	case err = <-granted:
	case <-ctx.Done():
		go func() { <-granted; closeFD() }()
		return nil, noNote, fmt.Errorf("filestore: lock %s: %w", path, ctx.Err())
	}
	if err != nil {
		closeFD()
		return nil, noNote, fmt.Errorf("filestore: lock %s: flock: %w", path, err)
	}
	return closeFD, lockFD(fd), nil
}

// A lockFD is the descriptor of a held lock file, with the writers' note.
type lockFD int

// noNote is a lockFD without a note.
const noNote lockFD = -1

// readNote reads the note into buf and returns its length, 0 if none.
func (fd lockFD) readNote(buf []byte) int {
	if fd < 0 {
		return 0
	}
	for {
		n, err := syscall.Pread(int(fd), buf, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0
		}
		return n
	}
}

// writeNote replaces the note, best effort: a note that was not written
// matches no record.
func (fd lockFD) writeNote(b []byte) {
	if fd < 0 {
		return
	}
	for {
		if _, err := syscall.Pwrite(int(fd), b, 0); err != syscall.EINTR {
			return
		}
	}
}

func flockRetry(fd, how int) error {
	for {
		if err := syscall.Flock(fd, how); err != syscall.EINTR {
			return err
		}
	}
}
