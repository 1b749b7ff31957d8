package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A cluster is a throwaway PostgreSQL server: the system's initdb and
// pg_ctl, a temp directory, a loopback port, trust authentication for the
// superuser postgres. Run as root, its programs run as the postgres OS
// user (postgres refuses root).
type cluster struct {
	dir, data, bin string
	port           int
	owner          *owner // nil: ourselves
}

// startCluster makes and starts a cluster; stop stops it and removes it.
func startCluster(ctx context.Context) (*cluster, error) {
	bin, err := serverBinDir()
	if err != nil {
		return nil, err
	}
	o, err := serverOwner()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sessionstore-pg-demo-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, data: filepath.Join(dir, "data"), bin: bin, owner: o}
	if err := c.own(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.run(ctx, "initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "--no-sync", "--locale=C", "--encoding=UTF8"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k '%s' -c fsync=off", c.port, c.dir)
	if err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.data, "-l", filepath.Join(c.dir, "postgres.log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return c, nil
}

// URL is the superuser's connection URL.
func (c *cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// stop stops the server (fast shutdown) and removes its files.
func (c *cluster) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := c.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", c.data)
	if rerr := os.RemoveAll(c.dir); err == nil {
		err = rerr
	}
	return err
}

// run runs one of the server's programs, as the server's user, without
// libpq's PG* variables (they could point it elsewhere).
func (c *cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := runAs(cmd, c.owner); err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	return nil
}

// serverBinDir is the directory of initdb, pg_ctl and postgres: that of
// the real initdb on PATH (which may be a lone symlink), else the highest
// version in /usr/lib/postgresql/*/bin (Debian's layout).
func serverBinDir() (string, error) {
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
	for _, d := range append(dirs, debian...) {
		if has(d, "initdb", "pg_ctl", "postgres") {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server programs (initdb, pg_ctl, postgres) beside the initdb on PATH or in /usr/lib/postgresql/*/bin: install PostgreSQL (apt-get install -y postgresql), or give -postgres URL")
}

func has(dir string, names ...string) bool {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			return false
		}
	}
	return true
}
