package fsutil

import "errors"

// ErrInsecure is wrapped by the permission checks. crypto and filestore
// export it as ErrInsecurePermissions.
var ErrInsecure = errors.New("insecure permissions")

// ErrSymlink is returned by OpenNoFollow for a symlink.
var ErrSymlink = errors.New("is a symlink, not followed")
