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
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// memberEnv carries a memberConfig (as JSON) to a process that StartCluster
// started to run one member.
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
	var c memberConfig
	err := json.Unmarshal([]byte(spec), &c)
	var m *Member
	if err == nil {
		m, err = startMember(c, 60*time.Second)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest: member:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	m.Close()
	os.Exit(0)
}

// ClusterConfig describes a cluster of 3 members that are child processes.
type ClusterConfig struct {
	Dir     string    // their data directories go under it
	Command []string  // the program to start for each member, with its arguments; it calls MaybeRunMember first
	Stderr  io.Writer // the members' stderr; nil: discarded
}

// A Cluster is a running cluster of member processes, driven by one
// goroutine.
type Cluster struct {
	Members []*ProcMember
}

// A ProcMember is one member process.
type ProcMember struct {
	Name     string
	Endpoint string // its client URL
	spec     []byte // its memberConfig
	cfg      *ClusterConfig
	cmd      *exec.Cmd // nil once killed
}

// start starts the member's process and waits until it says it is ready.
func (m *ProcMember) start() error {
	cmd := exec.Command(m.cfg.Command[0], m.cfg.Command[1:]...)
	cmd.Env = append(os.Environ(), memberEnv+"="+string(m.spec))
	cmd.Stderr = m.cfg.Stderr
	// The member ends when this pipe closes: when we end.
	if _, err := cmd.StdinPipe(); err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("etcdtest: start member %s: %w", m.Name, err)
	}
	m.cmd = cmd
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		return fmt.Errorf("etcdtest: member %s ended before it was ready", m.Name)
	}
	go io.Copy(io.Discard, stdout)
	return nil
}

// Restart starts a killed member again on its data directory and waits
// until it is ready.
func (m *ProcMember) Restart() error {
	if m.cmd != nil {
		return fmt.Errorf("etcdtest: member %s is running", m.Name)
	}
	return m.start()
}

// StartCluster starts a cluster of 3 members, each a child process running
// c.Command, and waits until every member is ready (a quorum formed). A
// member that loses its port to another process before it binds it ends:
// then the cluster starts again on other ports, up to 3 times.
func StartCluster(c ClusterConfig) (*Cluster, error) {
	for attempt := 1; ; attempt++ {
		cl, err := startCluster(&c, filepath.Join(c.Dir, strconv.Itoa(attempt)))
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "ended before it was ready") {
			return cl, err
		}
	}
}

func startCluster(c *ClusterConfig, dir string) (*Cluster, error) {
	cfgs := make([]memberConfig, 3)
	var initial []string
	for i := range cfgs {
		name := fmt.Sprintf("m%d", i+1)
		cfgs[i] = memberConfig{Name: name, Dir: filepath.Join(dir, name), Peer: freeAddr(), Client: freeAddr()}
		initial = append(initial, name+"=http://"+cfgs[i].Peer)
	}
	cl := &Cluster{}
	ready := make(chan error, len(cfgs))
	for _, cfg := range cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
		spec, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		m := &ProcMember{Name: cfg.Name, Endpoint: "http://" + cfg.Client, spec: spec, cfg: c}
		cl.Members = append(cl.Members, m)
		go func() { ready <- m.start() }()
	}
	// Every start ends (a member not ready within its own timeout exits)
	// before Close reads the members' processes.
	var errs []error
	for range cfgs {
		errs = append(errs, <-ready)
	}
	if err := errors.Join(errs...); err != nil {
		cl.Close()
		return nil, err
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
			if m.cmd == nil {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := client.Status(sctx, strings.TrimPrefix(m.Endpoint, "http://"))
			cancel()
			if err != nil {
				last = err
			} else if st.Leader != 0 && st.Leader == st.Header.MemberId {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(errors.New("etcdtest: no leader"), ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill kills the member's process (SIGKILL on Unix) and waits for it.
// Killing a killed member does nothing.
func (m *ProcMember) Kill() error {
	if m.cmd == nil {
		return nil
	}
	err := m.cmd.Process.Kill()
	m.cmd.Wait()
	m.cmd = nil
	return err
}

// Close kills every member still running, and waits for them. It does not
// remove the data directories.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		m.Kill()
	}
}
