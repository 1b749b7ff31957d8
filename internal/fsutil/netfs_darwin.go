package fsutil

import (
	"strings"
	"syscall"
)

// NetworkFS reports whether path is on a network or user-space file system
// (NFS, SMB, AFP, WebDAV, macFUSE, …), and which.
func NetworkFS(path string) (string, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "", false
	}
	var b strings.Builder
	for _, c := range st.Fstypename {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	name := b.String()
	switch {
	case name == "nfs", name == "smbfs", name == "afpfs", name == "webdav", name == "cifs",
		strings.Contains(name, "fuse"):
		return name, true
	}
	return name, false
}
