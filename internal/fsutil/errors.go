package fsutil

import "errors"

// ErrSymlink is returned by OpenNoFollow for a symlink.
var ErrSymlink = errors.New("is a symlink, not followed")

// ErrNotRegular is returned by ReadRegular for anything but a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is returned by ReadRegular for a file over its limit.
var ErrTooLarge = errors.New("larger than the limit")
