//go:build !linux

package pgtest

import (
	"os"
	"os/exec"
)

// runAs runs cmd as ourselves: running the tests as root (the server as
// the postgres user) is supported on Linux only; elsewhere, initdb
// refuses root.
func runAs(*exec.Cmd, *account) {}

// kill SIGKILLs the postmaster; its backends exit when they notice.
func kill(p *os.Process) []int {
	p.Kill()
	return nil
}

func alive(int) bool { return false }
