//go:build linux || darwin

package filestore_test

import (
	"errors"
	"path/filepath"
	"syscall"
)

// The floors' file system work, done the cheapest way Go allows: raw
// system calls on raw file descriptors, never an *os.File (whose open
// registers the descriptor with the runtime's poller).

// floorReadFile reads a whole (small) file: open, read until EOF, close.
func floorReadFile(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// floorStat is one fstatat of path, not following a symlink.
func floorStat(path string) error {
	var st syscall.Stat_t
	return syscall.Lstat(path, &st)
}

// floorLock takes an exclusive flock on path, creating it 0600: open and
// flock(LOCK_EX), blocking. Closing the descriptor releases it.
func floorLock(path string) (unlock func(), err error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CREAT|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return func() { syscall.Close(fd) }, nil
}

// floorDurableWrite replaces dir/name with data durably: open a temp file
// O_CREAT|O_EXCL|O_WRONLY 0600, write, fsync, close, rename over the
// target, open the directory, fsync, close. 8 system calls.
func floorDurableWrite(dir, name, tmpName string, data []byte) error {
	tmp, target := filepath.Join(dir, tmpName), filepath.Join(dir, name)
	const flags = syscall.O_CREAT | syscall.O_EXCL | syscall.O_WRONLY | syscall.O_CLOEXEC | syscall.O_NOFOLLOW
	fd, err := syscall.Open(tmp, flags, 0o600)
	if errors.Is(err, syscall.EEXIST) { // left by a killed run
		syscall.Unlink(tmp)
		fd, err = syscall.Open(tmp, flags, 0o600)
	}
	if err != nil {
		return err
	}
	for len(data) > 0 {
		n, err := syscall.Write(fd, data)
		if err != nil {
			syscall.Close(fd)
			return err
		}
		data = data[n:]
	}
	if err := syscall.Fsync(fd); err != nil {
		syscall.Close(fd)
		return err
	}
	if err := syscall.Close(fd); err != nil {
		return err
	}
	if err := syscall.Rename(tmp, target); err != nil {
		return err
	}
	dfd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = syscall.Fsync(dfd)
	if cerr := syscall.Close(dfd); err == nil {
		err = cerr
	}
	return err
}
