package etcdstore

import "os"

// keyLockFlag opens the key file's lock file, creating it.
const keyLockFlag = os.O_CREATE | os.O_RDONLY
