package fsutil

import "syscall"

// Magic numbers of statfs(2)'s f_type for file systems whose writes from
// other hosts or mounts inotify does not see.
var networkFS = map[int64]string{
	0x6969:     "nfs",
	0x517b:     "smb",
	0xff534d42: "cifs",
	0xfe534d42: "smb2",
	0x65735546: "fuse",
	0x01021997: "9p",
	0x00c36400: "ceph",
	0x5346414f: "afs",
	0x73757245: "coda",
	0x564c:     "ncp",
	0x0bd00bd0: "lustre",
	0x01161970: "gfs2",
	0x7461636f: "ocfs2",
	0x47504653: "gpfs",
	0x013111a8: "ibrix",
	0xaad7aaea: "panfs",
	0x19830326: "fhgfs",
}

// NetworkFS reports whether path is on a network or user-space file system
// (NFS, CIFS/SMB, FUSE, 9p, Ceph, …), and which.
func NetworkFS(path string) (string, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "", false
	}
	name, ok := networkFS[int64(st.Type)&0xffffffff]
	return name, ok
}
