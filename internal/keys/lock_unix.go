//go:build !windows

package keys

import (
	"os"
	"syscall"
)

// lockFlag opens a key file's lock file, creating it, never through a
// symlink, and without blocking on a FIFO.
const lockFlag = os.O_CREATE | os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
