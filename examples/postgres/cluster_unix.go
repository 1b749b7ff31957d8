//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// owner is the OS user the server's programs run as.
type owner struct{ uid, gid int }

// serverOwner is the postgres OS user when we are root, else nil
// (ourselves).
func serverOwner() (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, the server must run as the postgres OS user, and there is none (apt-get install -y postgresql creates it): %v", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, err
	}
	return &owner{uid, gid}, nil
}

// own gives dir to the server's user.
func (c *cluster) own(dir string) error {
	if c.owner == nil {
		return nil
	}
	return os.Chown(dir, c.owner.uid, c.owner.gid)
}

func runAs(cmd *exec.Cmd, o *owner) error {
	if o != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.gid)}}
	}
	return nil
}
