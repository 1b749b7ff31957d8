package keys

import "os"

// lockFlag opens a key file's lock file, creating it.
const lockFlag = os.O_CREATE | os.O_RDONLY
