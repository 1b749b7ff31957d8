//go:build !linux

package pgtest

import (
	"errors"
	"os"
	"os/exec"
)

// runAs runs cmd as ourselves: running the tests as root (the server as
// the postgres user) is supported on Linux only.
func runAs(cmd *exec.Cmd, owner *account) error {
	if owner != nil {
		return errors.New("pgtest: running the tests as root is supported on Linux only")
	}
	return nil
}

// kill SIGKILLs the postmaster; its backends exit when they notice.
func kill(p *os.Process) []int {
	p.Kill()
	return nil
}

func alive(pid int) bool { return false }
