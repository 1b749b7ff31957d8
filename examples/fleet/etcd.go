package main

// Embedded etcd for the demo (go.etcd.io/etcd/server/v3/embed): one
// member in this process (-serve), or a cluster whose members are child
// processes, this program re-executed. It is the demo's own, apart from
// the tests' helper, so that the demo links no testing package.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// memberEnv carries a memberConfig (as JSON) to a process that is to run
// one member of a cluster: see maybeRunMember and startCluster.
const memberEnv = "FLEET_ETCD_MEMBER"

// A member is one running embedded etcd member.
type member struct {
	etcd     *embed.Etcd
	endpoint string // its client URL
}

// A memberConfig describes one member.
type memberConfig struct {
	Name, Dir        string
	PeerURL, Client  string // http://127.0.0.1:PORT
	InitialCluster   string // name=peerURL,…; "" for a single member
	TickMs, Election uint   // raft's heartbeat and election timeout; 0: 10 and 100 ms
}

// startMember starts a member and waits until it is ready (for a cluster:
// until a quorum formed) or timeout passes. Its data goes to c.Dir without
// fsync: the demo's data is thrown away at its end.
func startMember(c memberConfig, timeout time.Duration) (*member, error) {
	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = c.Dir
	cfg.TickMs, cfg.ElectionMs = 10, 100
	if c.TickMs != 0 {
		cfg.TickMs, cfg.ElectionMs = c.TickMs, c.Election
	}
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	peer, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, err
	}
	client, err := url.Parse(c.Client)
	if err != nil {
		return nil, err
	}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.InitialCluster = c.InitialCluster
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = c.Name + "=" + c.PeerURL
	}
	cfg.InitialClusterToken = "sessionstore-fleet"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd member %s: %w", c.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd member %s: %w", c.Name, err)
	case <-time.After(timeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcd member %s not ready after %v", c.Name, timeout)
	}
	return &member{etcd: e, endpoint: c.Client}, nil
}

// close stops the member and waits until it has stopped.
func (m *member) close() { m.etcd.Close() }

// freeURL returns http://127.0.0.1:PORT with a port that was free a moment
// ago.
func freeURL() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "http://" + l.Addr().String(), nil
}

// maybeRunMember runs one cluster member and exits, if this process was
// started by startCluster to be one; otherwise it returns at once. The
// member runs until its stdin closes (the parent ended or closed the
// cluster) or it is killed.
func maybeRunMember() {
	spec := os.Getenv(memberEnv)
	if spec == "" {
		return
	}
	var c memberConfig
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, "fleet: etcd member:", err)
		os.Exit(1)
	}
	m, err := startMember(c, 60*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	fmt.Printf("ready %x\n", uint64(m.etcd.Server.MemberID()))
	io.Copy(io.Discard, os.Stdin)
	m.close()
	os.Exit(0)
}

// A cluster is a running cluster of member processes.
type cluster struct {
	members []*procMember
}

// A procMember is one member process.
type procMember struct {
	name     string
	endpoint string // its client URL

	mu    sync.Mutex // guards cmd, stdin and ended
	cmd   *exec.Cmd
	stdin io.WriteCloser // the member runs until it is closed
	ended bool
}

// pid is the member's process ID.
func (m *procMember) pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// start starts the member's process, running command with spec in
// memberEnv, and waits until it says it is ready.
func (m *procMember) start(command []string, spec []byte) error {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = append(os.Environ(), memberEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // closed when this process ends, at the latest
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("etcd member %s: %w", m.name, err)
	}
	m.mu.Lock()
	m.cmd, m.stdin = cmd, stdin
	m.mu.Unlock()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "ready ") {
		return fmt.Errorf("etcd member %s ended before it was ready", m.name)
	}
	go io.Copy(io.Discard, stdout)
	return nil
}

// startCluster starts a cluster of size members, each a child process
// running command (which calls maybeRunMember first) with its data under
// dir, and waits until every member is ready (a quorum formed). Raft ticks
// every 20 ms and elects after 200 ms: fast elections that a loaded
// machine does not trigger by mistake. The ports are free when picked, and
// another process may take one first: a member that ends before it is
// ready makes it start the cluster again, on other ports, up to 3 times.
func startCluster(size int, dir string, command []string) (*cluster, error) {
	for attempt := 1; ; attempt++ {
		cl, err := startClusterIn(size, filepath.Join(dir, strconv.Itoa(attempt)), command)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "ended before it was ready") {
			return cl, err
		}
	}
}

func startClusterIn(size int, dir string, command []string) (*cluster, error) {
	const timeout = 60 * time.Second
	cl := &cluster{}
	var cfgs []memberConfig
	var initial []string
	for i := range size {
		peer, err := freeURL()
		if err != nil {
			return nil, err
		}
		client, err := freeURL()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("m%d", i+1)
		cfgs = append(cfgs, memberConfig{Name: name, Dir: filepath.Join(dir, name), PeerURL: peer, Client: client,
			TickMs: 20, Election: 200})
		initial = append(initial, name+"="+peer)
	}
	ready := make(chan error, size)
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(initial, ",")
		spec, err := json.Marshal(cfgs[i])
		if err != nil {
			return nil, err
		}
		m := &procMember{name: cfgs[i].Name, endpoint: cfgs[i].Client}
		cl.members = append(cl.members, m)
		go func() { ready <- m.start(command, spec) }()
	}
	deadline := time.After(timeout)
	for range cfgs {
		select {
		case err := <-ready:
			if err != nil {
				cl.close()
				return nil, err
			}
		case <-deadline:
			cl.close()
			return nil, fmt.Errorf("the etcd cluster did not form within %v", timeout)
		}
	}
	return cl, nil
}

// endpoints returns the client URLs of all members, the killed ones
// included.
func (c *cluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.endpoint)
	}
	return eps
}

// leader returns the member that is the leader, as a live member that says
// it leads sees it, waiting until there is one or ctx ends.
func (c *cluster) leader(ctx context.Context, client *clientv3.Client) (*procMember, error) {
	for {
		var last error
		for _, m := range c.members {
			if m.isEnded() {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := client.Status(sctx, strings.TrimPrefix(m.endpoint, "http://"))
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
			return nil, errors.Join(errors.New("no etcd leader"), ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill kills the member's process (SIGKILL on Unix) and waits for it.
func (m *procMember) kill() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended {
		return nil
	}
	m.ended = true
	if m.cmd == nil || m.cmd.Process == nil {
		return nil
	}
	err := m.cmd.Process.Kill()
	m.cmd.Wait()
	return err
}

// isEnded reports whether the member was killed or closed.
func (m *procMember) isEnded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ended
}

// close kills every member still running, and waits for them: their data
// is the demo's, to be removed.
func (c *cluster) close() {
	for _, m := range c.members {
		m.kill()
	}
}
