package pgtest

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runAs makes cmd run as owner (nil: as ourselves) and die with the test
// process, so that a test binary killed by its timeout leaves no server.
func runAs(cmd *exec.Cmd, owner *account) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if owner != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(owner.uid), Gid: uint32(owner.gid)}
	}
}

// kill SIGKILLs the postmaster and its children, as a crash of the
// machine would: the postmaster is stopped first so that it forks no
// child after they are listed. It returns the children's pids.
func kill(p *os.Process) []int {
	if p.Signal(syscall.SIGSTOP) == nil {
		deadline := time.Now().Add(time.Second)
		for s, _ := stat(p.Pid); s != 'T' && time.Now().Before(deadline); s, _ = stat(p.Pid) {
			time.Sleep(time.Millisecond)
		}
	}
	var kids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if _, parent := stat(pid); parent == p.Pid {
				kids = append(kids, pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	p.Kill()
	return kids
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	s, _ := stat(pid)
	return s != 0 && s != 'Z' && s != 'X'
}

// stat returns the state letter and the parent's pid from /proc/PID/stat
// (0, 0 if there is none).
func stat(pid int) (state byte, parent int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	// The command's name, in parentheses, may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 {
		return 0, 0
	}
	parent, _ = strconv.Atoi(f[1])
	return f[0][0], parent
}
