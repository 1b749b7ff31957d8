//go:build !windows

package fsutil

import (
	"io/fs"
	"os"
	"syscall"
)

// rawFile is an open file used through raw system calls.
type rawFile struct {
	fd   int
	path string
}

// createPrivate creates path with O_EXCL, never through a symlink, mode
// exactly 0600 whatever the umask.
func createPrivate(path string) (tempFile, error) {
	fd, err := openRetry(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	// The umask may have taken bits away; it can never have added any, but
	// set the mode exactly so that the result does not depend on it.
	if err := syscall.Fchmod(fd, 0o600); err != nil {
		syscall.Close(fd)
		os.Remove(path)
		return nil, &fs.PathError{Op: "chmod", Path: path, Err: err}
	}
	return &rawFile{fd: fd, path: path}, nil
}

func (f *rawFile) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := syscall.Write(f.fd, b[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, &fs.PathError{Op: "write", Path: f.path, Err: err}
		}
		n += m
	}
	return n, nil
}

func (f *rawFile) Sync() error {
	if err := syscall.Fsync(f.fd); err != nil {
		return &fs.PathError{Op: "sync", Path: f.path, Err: err}
	}
	return nil
}

func (f *rawFile) Close() error {
	if err := syscall.Close(f.fd); err != nil {
		return &fs.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}

// openRetry opens path with raw open(2), retrying on EINTR.
func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := syscall.Open(path, flags, 0)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

// rename is rename(2): os.Rename first stats the target, which a record
// never needs.
func rename(from, to string) error {
	if err := syscall.Rename(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}
