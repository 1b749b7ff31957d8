package fsutil

import (
	"strings"

	"golang.org/x/sys/unix"
)

// NetworkFS reports whether path is on a network or user-space file system
// (NFS, SMB, AFP, WebDAV, macFUSE, …), and which.
func NetworkFS(path string) (string, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "", false
	}
	name := unix.ByteSliceToString(st.Fstypename[:])
	switch {
	case name == "nfs", name == "smbfs", name == "afpfs", name == "webdav", name == "cifs",
		strings.Contains(name, "fuse"):
		return name, true
	}
	return name, false
}
