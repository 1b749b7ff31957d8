package fsutil

import "errors"

// ErrSymlink is returned by OpenNoFollow for a symlink.
var ErrSymlink = errors.New("is a symlink, not followed")
