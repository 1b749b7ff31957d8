package pgtest

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runAs makes cmd run as owner (nil: as ourselves) and die with the test
// process, so that a test binary killed by its timeout leaves no server.
func runAs(cmd *exec.Cmd, owner *account) error {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if owner != nil {
		attr.Credential = &syscall.Credential{Uid: uint32(owner.uid), Gid: uint32(owner.gid)}
	}
	cmd.SysProcAttr = attr
	return nil
}

func interrupt(p *os.Process) error { return p.Signal(syscall.SIGINT) }

// kill SIGKILLs the postmaster and its children, as a crash of the
// machine would: the postmaster is stopped first so that it forks no
// child after they are listed. It returns the children's pids.
func kill(p *os.Process) []int {
	if p.Signal(syscall.SIGSTOP) == nil {
		deadline := time.Now().Add(time.Second)
		for state(p.Pid) != 'T' && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	kids := children(p.Pid)
	for _, pid := range kids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	p.Kill()
	return kids
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	s := state(pid)
	return s != 0 && s != 'Z' && s != 'X'
}

// state returns the state letter of /proc/PID/stat, 0 if there is none.
func state(pid int) byte {
	f := stat(strconv.Itoa(pid))
	if len(f) < 1 {
		return 0
	}
	return f[0][0]
}

// stat returns the fields of /proc/PID/stat after the command's name.
func stat(pid string) []string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// children returns the pids whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := stat(e.Name()); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, child)
		}
	}
	return kids
}
