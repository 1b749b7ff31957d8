//go:build windows

package filestore

import "os"

// lockFlag opens a lock file, creating it.
const lockFlag = os.O_CREATE | os.O_RDONLY
