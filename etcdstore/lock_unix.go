//go:build !windows

package etcdstore

import (
	"os"
	"syscall"
)

// keyLockFlag opens the key file's lock file, creating it, never through
// a symlink, and without blocking on a FIFO.
const keyLockFlag = os.O_CREATE | os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
