// Package pgtest starts real PostgreSQL servers for sessionstore's tests,
// each the test's own child process (so a test can SIGKILL it and start it
// again) on a loopback port, run as the postgres OS user when the tests run
// as root. A missing server (initdb on PATH, else the highest
// /usr/lib/postgresql/*/bin) is a test failure that says what to install,
// never a skip.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	readyTimeout = 30 * time.Second // a start, a crash recovery, a promotion
	stopTimeout  = 30 * time.Second // a fast shutdown before it turns into a kill
	toolTimeout  = 60 * time.Second // initdb, pg_basebackup
)

// A Cluster is one PostgreSQL server (a data directory and, while it runs,
// its postmaster) owned by a test. Superuser postgres connects without a
// password over 127.0.0.1; other roles need theirs (see CreateRole).
type Cluster struct {
	dir, data, logPath string // dir holds data (the data directory) and logPath
	bin                string // holds initdb, postgres, pg_basebackup
	owner              *account
	port               int
	settings           map[string]string

	proc *os.Process   // the running postmaster; nil when stopped
	done chan struct{} // closed when proc has been reaped
}

// An Option adjusts a cluster's server settings.
type Option func(map[string]string)

// Set sets a server setting (postgres -c name=value), for example
// Set("log_statement", "all") for a test that reads the log.
func Set(name, value string) Option {
	return func(s map[string]string) { s[name] = value }
}

// Start starts a new cluster and waits until it accepts connections; the
// test's cleanup stops it.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	c := testCluster(t, opts)
	if err := c.initAndStart(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *Cluster) initAndStart() error {
	if out, err := c.tool("initdb", "-D", c.data, "-U", "postgres", "--auth=trust",
		"--locale=C", "--encoding=UTF8", "--no-sync"); err != nil {
		return fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	hba := "host all postgres 127.0.0.1/32 trust\n" +
		"host replication postgres 127.0.0.1/32 trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n"
	path := filepath.Join(c.data, "pg_hba.conf")
	if err := os.WriteFile(path, []byte(hba), 0o600); err != nil {
		return err
	}
	if err := c.chown(path); err != nil {
		return err
	}
	return c.startFirst()
}

// startFirst starts a new cluster's server, on another port if another
// process took the one it was given.
func (c *Cluster) startFirst() error {
	for attempt := 1; ; attempt++ {
		err := c.start()
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "could not bind") {
			return err
		}
		c.port = freePort()
	}
}

// StartWithStandby starts a primary and a streaming standby made from it
// with pg_basebackup, and waits until the primary reports the standby as
// synchronous: from then on, a commit the primary acknowledges is on the
// standby's disk. opts apply to both servers.
func StartWithStandby(t testing.TB, opts ...Option) (primary, standby *Cluster) {
	t.Helper()
	primary = Start(t, append([]Option{Set("synchronous_standby_names", "*"), Set("synchronous_commit", "on")}, opts...)...)
	standby = testCluster(t, opts)
	if out, err := standby.tool("pg_basebackup", "-D", standby.data, "-h", "127.0.0.1",
		"-p", strconv.Itoa(primary.port), "-U", "postgres", "-X", "stream", "-R", "-c", "fast", "--no-sync"); err != nil {
		t.Fatalf("pgtest: pg_basebackup: %v\n%s", err, out)
	}
	if err := standby.startFirst(); err != nil {
		t.Fatal(err)
	}
	primary.WaitSync(t)
	return primary, standby
}

// WaitSync waits until a primary reports a synchronous standby streaming
// from it (in pg_stat_replication): after StartWithStandby, or after either
// server restarted.
func (c *Cluster) WaitSync(t testing.TB) {
	t.Helper()
	err := poll(readyTimeout, func(ctx context.Context) error {
		var n int
		err := c.queryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'", &n)
		if err == nil && n == 0 {
			err = errors.New("no synchronous standby in pg_stat_replication")
		}
		return err
	})
	if err != nil {
		t.Fatalf("pgtest: no synchronous standby: %v", err)
	}
}

// Promote promotes a standby and waits until it accepts writes.
func (c *Cluster) Promote(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var promoted bool // within 20 s, the context's 30 s
	if err := c.queryRow(ctx, "SELECT pg_promote(true, 20)", &promoted); err != nil || !promoted {
		t.Fatalf("pgtest: promote: %v (done: %v)\n%s", err, promoted, lastLines(c.Log(), 20))
	}
}

// Port returns the server's TCP port on 127.0.0.1, the same across restarts.
func (c *Cluster) Port() int { return c.port }

// URL returns the superuser's connection URL:
// postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// MultiHostURL returns the superuser's URL listing every cluster, with
// target_session_attrs=read-write: a client connects to whichever accepts
// writes (after a failover: the promoted standby).
func MultiHostURL(clusters ...*Cluster) string {
	hosts := make([]string, len(clusters))
	for i, c := range clusters {
		hosts[i] = fmt.Sprintf("127.0.0.1:%d", c.port)
	}
	return "postgres://postgres@" + strings.Join(hosts, ",") + "/postgres?sslmode=disable&target_session_attrs=read-write"
}

// Log returns the server log so far. It holds the statements, with their
// parameters, only with Set("log_statement", "all").
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// Pool returns a pool of the superuser's connections, closed at the test's end.
func (c *Cluster) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), c.URL())
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// Exec runs sql as the superuser on a connection of its own.
func (c *Cluster) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL())
	if err == nil {
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql, args...)
	}
	if err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// CreateRole creates a login role that authenticates over 127.0.0.1 with
// password (SCRAM; it has no other privileges) and returns its URL.
func (c *Cluster) CreateRole(t testing.TB, name, password string) string {
	t.Helper()
	c.Exec(t, "CREATE ROLE "+pgx.Identifier{name}.Sanitize()+" LOGIN PASSWORD '"+strings.ReplaceAll(password, "'", "''")+"'")
	u := url.URL{Scheme: "postgres", User: url.UserPassword(name, password),
		Host: fmt.Sprintf("127.0.0.1:%d", c.port), Path: "/postgres", RawQuery: "sslmode=disable"}
	return u.String()
}

// Restart stops the server (fast shutdown) if it runs and starts it again
// on the same port; after Kill, the start is a crash recovery.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	if err := c.Stop(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := c.start(); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}

// Stop shuts the server down (fast: SIGINT; sessions are ended) and reaps
// it; one that does not stop within 30 s is killed. Stopping a stopped
// server does nothing.
func (c *Cluster) Stop() error {
	if c.proc == nil {
		return nil
	}
	if c.proc.Signal(os.Interrupt) == nil {
		select {
		case <-c.done:
			c.proc, c.done = nil, nil
			return nil
		case <-time.After(stopTimeout):
		}
	}
	if err := c.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("pgtest: server on port %d ignored the fast shutdown for %v: killed", c.port, stopTimeout)
}

// Kill crashes the server: SIGKILL to the postmaster and its processes.
// It returns once they are gone and the port is closed. Killing a stopped
// server does nothing.
func (c *Cluster) Kill() error {
	if c.proc == nil {
		return nil
	}
	left := kill(c.proc)
	select {
	case <-c.done:
	case <-time.After(stopTimeout):
		return fmt.Errorf("pgtest: postmaster %d survived SIGKILL for %v", c.proc.Pid, stopTimeout)
	}
	c.proc, c.done = nil, nil
	return poll(stopTimeout, func(context.Context) error {
		for _, pid := range left {
			if alive(pid) {
				return fmt.Errorf("postgres process %d still alive", pid)
			}
		}
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.port), time.Second)
		if err == nil {
			conn.Close()
			return fmt.Errorf("port %d still open", c.port)
		}
		return nil
	})
}

// newCluster makes a cluster in a new temp directory that the server's user
// owns (and so can reach: the temp root is searchable by others), for
// initdb or pg_basebackup to make the data directory in.
func newCluster(opts []Option) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	owner, err := serverOwner()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sessionstore-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, data: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "postgres.log"),
		bin: bin, owner: owner, port: freePort(), settings: map[string]string{
			"listen_addresses":           "127.0.0.1",
			"unix_socket_directories":    "", // the tests use TCP
			"shared_buffers":             "16MB",
			"max_connections":            "100",
			"dynamic_shared_memory_type": "posix",
			"jit":                        "off",
			// A standby whose primary restarted reconnects at once.
			"wal_retrieve_retry_interval": "100ms",
		}}
	for _, o := range opts {
		o(c.settings)
	}
	if err := c.chown(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// testCluster makes a cluster that is stopped and removed at t's end
// (showing its log if t failed).
func testCluster(t testing.TB, opts []Option) *Cluster {
	t.Helper()
	c, err := newCluster(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgtest: log of the server on port %d (%s), last lines:\n%s", c.port, c.logPath, lastLines(c.Log(), 30))
		}
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
		os.RemoveAll(c.dir)
	})
	return c
}

func (c *Cluster) start() error {
	log, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	from, _ := log.Seek(0, 2)
	args := []string{"-D", c.data, "-c", "port=" + strconv.Itoa(c.port)}
	for _, k := range slices.Sorted(maps.Keys(c.settings)) {
		args = append(args, "-c", k+"="+c.settings[k])
	}
	cmd := c.command(context.Background(), "postgres", args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	c.proc, c.done = cmd.Process, done
	err = poll(readyTimeout, func(ctx context.Context) error {
		select {
		case <-done:
			return errExited
		default:
		}
		// A server answers: ours, not one that took the port first?
		var dir string
		if err := c.queryRow(ctx, "SHOW data_directory", &dir); err != nil {
			return err
		}
		if dir != c.data {
			return fmt.Errorf("port %d answered by the server of %s", c.port, dir)
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errExited) {
			c.Kill()
		}
		c.proc, c.done = nil, nil
		tail := c.Log()[from:]
		return fmt.Errorf("postgres on port %d not ready: %w; its log:\n%s", c.port, err, lastLines(tail, 30))
	}
	return nil
}

var errExited = errors.New("postgres exited")

func (c *Cluster) queryRow(ctx context.Context, sql string, dest ...any) error {
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

// tool runs one of the server's programs, bounded.
func (c *Cluster) tool(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	return c.command(ctx, name, args...).CombinedOutput()
}

// command runs one of the server's programs as the server's user, without
// libpq's PG* variables, which could point it elsewhere.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
	runAs(cmd, c.owner)
	return cmd
}

func (c *Cluster) chown(path string) error {
	if c.owner == nil {
		return nil
	}
	return os.Chown(path, c.owner.uid, c.owner.gid)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// poll calls f until it returns nil or timeout passes (then: f's last
// error), every 50 ms; f's context ends at the deadline.
func poll(timeout time.Duration, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		try, cancelTry := context.WithTimeout(ctx, 5*time.Second)
		err := f(try)
		cancelTry()
		if err == nil || errors.Is(err, errExited) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var ports = struct {
	sync.Mutex
	given map[int]bool
}{given: map[int]bool{}}

// freePort returns a loopback port that was free a moment ago and that no
// other cluster of this process was given (a cluster keeps its port
// across restarts).
func freePort() int {
	ports.Lock()
	defer ports.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err) // no loopback: no test can run
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !ports.given[port] {
			ports.given[port] = true
			return port
		}
	}
}

type account struct{ uid, gid int }

// serverOwner returns whom the server's programs run as: the postgres OS
// user when we are root, else nil (ourselves).
func serverOwner() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs a postgres OS user to run the server as (apt-get install -y postgresql creates it): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid) // numeric on Linux, the only OS where root is supported
	gid, _ := strconv.Atoi(u.Gid)
	return &account{uid, gid}, nil
}

// binDir returns the directory of the server's programs: that of the real
// initdb on PATH (which may be a lone symlink), else the highest version
// in /usr/lib/postgresql/*/bin.
var binDir = sync.OnceValues(func() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	sort.Slice(debian, func(i, j int) bool { return version(debian[i]) > version(debian[j]) })
next:
	for _, d := range append(dirs, debian...) {
		for _, n := range []string{"initdb", "postgres", "pg_basebackup"} {
			if _, err := os.Stat(filepath.Join(d, n)); err != nil {
				continue next
			}
		}
		return d, nil
	}
	return "", fmt.Errorf("pgtest: no PostgreSQL server: initdb, postgres and pg_basebackup are neither beside the initdb on PATH nor in /usr/lib/postgresql/*/bin (looked in %v); install it: apt-get install -y postgresql", append(dirs, debian...))
})
