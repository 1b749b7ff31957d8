package etcdtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// memberEnv carries a MemberConfig (as JSON) to a process that is to run
// one member of a cluster: see MaybeRunMember and StartCluster.
const memberEnv = "SESSIONSTORE_ETCDTEST_MEMBER"

// MaybeRunMember runs one cluster member and exits, if this process was
// started by StartCluster to be one; otherwise it returns at once. Call it
// first in main (or TestMain) of a program that StartCluster re-executes.
// The member runs until its stdin closes (the parent ended or called
// Close) or it is killed.
func MaybeRunMember() {
	spec := os.Getenv(memberEnv)
	if spec == "" {
		return
	}
	var c MemberConfig
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest: member:", err)
		os.Exit(1)
	}
	m, err := StartMember(c, 60*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ready %x\n", uint64(m.Etcd.Server.MemberID()))
	io.Copy(io.Discard, os.Stdin)
	m.Close()
	os.Exit(0)
}

// ClusterConfig describes a cluster whose members are child processes.
type ClusterConfig struct {
	Size    int      // members; 3 if 0
	Dir     string   // their data directories go under it
	Command []string // the program to start for each member, with its arguments; it calls MaybeRunMember first
	Stderr  io.Writer
	// TickMs and ElectionMs set raft's timing; 0: 20 and 200 ms, fast
	// elections that a loaded machine does not trigger by mistake.
	TickMs, ElectionMs uint
	Timeout            time.Duration // for the cluster to form; 0: 60 s
}

// A Cluster is a running cluster of member processes.
type Cluster struct {
	Members []*ProcMember
}

// A ProcMember is one member process.
type ProcMember struct {
	Name     string
	Endpoint string // its client URL
	ID       uint64 // its raft member ID
	spec     []byte // its MemberConfig, for Restart
	command  []string
	stderr   io.Writer

	mu    sync.Mutex // guards cmd, stdin and ended
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ended bool
}

// PID is the member's process ID.
func (m *ProcMember) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd.Process.Pid
}

// start starts the member's process and waits until it says it is ready.
func (m *ProcMember) start() error {
	cmd := exec.Command(m.command[0], m.command[1:]...)
	cmd.Env = append(os.Environ(), memberEnv+"="+string(m.spec))
	cmd.Stderr = m.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("etcdtest: start member %s: %w", m.Name, err)
	}
	m.mu.Lock()
	m.cmd, m.stdin, m.ended = cmd, stdin, false
	m.mu.Unlock()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		return fmt.Errorf("etcdtest: member %s ended before it was ready", m.Name)
	}
	if _, err := fmt.Sscanf(sc.Text(), "ready %x", &m.ID); err != nil {
		return err
	}
	go io.Copy(io.Discard, stdout)
	return nil
}

// Restart starts a killed member again on its data directory and waits
// until it is ready.
func (m *ProcMember) Restart() error {
	if !m.Ended() {
		return fmt.Errorf("etcdtest: member %s is running", m.Name)
	}
	return m.start()
}

// StartCluster starts a cluster of c.Size members, each a child process
// running c.Command, and waits until every member is ready (a quorum
// formed). Its ports are free when picked, and another process may take
// one before a member binds it: a member that ends before it is ready
// makes it start the cluster again, on other ports, up to 3 times.
func StartCluster(c ClusterConfig) (*Cluster, error) {
	dir := c.Dir
	for attempt := 1; ; attempt++ {
		c.Dir = filepath.Join(dir, strconv.Itoa(attempt))
		cl, err := startCluster(c)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "ended before it was ready") {
			return cl, err
		}
	}
}

func startCluster(c ClusterConfig) (*Cluster, error) {
	if c.Size == 0 {
		c.Size = 3
	}
	if c.TickMs == 0 {
		c.TickMs, c.ElectionMs = 20, 200
	}
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Second
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	cl := &Cluster{}
	var cfgs []MemberConfig
	var initial []string
	for i := range c.Size {
		peer, err := FreeURL()
		if err != nil {
			return nil, err
		}
		client, err := FreeURL()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("m%d", i+1)
		cfgs = append(cfgs, MemberConfig{Name: name, Dir: filepath.Join(c.Dir, name), PeerURL: peer, Client: client,
			TickMs: c.TickMs, Election: c.ElectionMs})
		initial = append(initial, name+"="+peer)
	}
	ready := make(chan error, c.Size)
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(initial, ",")
		spec, err := json.Marshal(cfgs[i])
		if err != nil {
			return nil, err
		}
		m := &ProcMember{Name: cfgs[i].Name, Endpoint: cfgs[i].Client, spec: spec, command: c.Command, stderr: c.Stderr}
		cl.Members = append(cl.Members, m)
		go func() { ready <- m.start() }()
	}
	timeout := time.After(c.Timeout)
	for range cfgs {
		select {
		case err := <-ready:
			if err != nil {
				cl.Close()
				return nil, err
			}
		case <-timeout:
			cl.Close()
			return nil, fmt.Errorf("etcdtest: the cluster did not form within %v", c.Timeout)
		}
	}
	return cl, nil
}

// Endpoints returns the client URLs of all members, the killed ones
// included.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.Endpoint)
	}
	return eps
}

// Leader returns the member that is the leader, as a live member that says
// it leads sees it, waiting until there is one or ctx ends.
func (c *Cluster) Leader(ctx context.Context, client *clientv3.Client) (*ProcMember, error) {
	for {
		var last error
		for _, m := range c.Members {
			if m.Ended() {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := client.Status(sctx, strings.TrimPrefix(m.Endpoint, "http://"))
			cancel()
			if err != nil {
				last = err
				continue
			}
			if st.Leader != 0 && st.Leader == st.Header.MemberId {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(fmt.Errorf("etcdtest: no leader"), ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill kills the member's process (SIGKILL on Unix) and waits for it.
func (m *ProcMember) Kill() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended {
		return nil
	}
	m.ended = true
	if m.cmd == nil {
		return nil
	}
	err := m.cmd.Process.Kill()
	m.cmd.Wait()
	return err
}

// Ended reports whether the member was killed or closed.
func (m *ProcMember) Ended() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ended
}

// Close kills every member still running, and waits for them: their data
// is a test's, to be removed. It does not remove the data directories.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		m.Kill()
	}
}
