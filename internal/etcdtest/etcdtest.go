// Package etcdtest starts real etcd servers for sessionstore's tests:
// embedded members (go.etcd.io/etcd/server/v3/embed) on loopback, with
// fast election settings, no fsync and a silent logger; in this process
// (StartSingle, Endpoint) or as a cluster of 3 member processes
// (StartCluster). Nothing needs to be installed.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// A Member is one running embedded etcd member.
type Member struct {
	Endpoint string // its client URL
	e        *embed.Etcd
}

type memberConfig struct {
	Name, Dir      string
	Peer, Client   string // 127.0.0.1:PORT
	InitialCluster string // name=http://peer,…; "" for a single member
}

// startMember starts a member and waits until it is ready (for a cluster:
// until a quorum formed) or timeout passes.
func startMember(c memberConfig, timeout time.Duration) (*Member, error) {
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = c.Name, c.Dir
	// Fast elections that a loaded machine does not trigger by mistake.
	cfg.TickMs, cfg.ElectionMs = 20, 200
	cfg.UnsafeNoFsync = true // test data in a temp directory
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	peer, client := []url.URL{{Scheme: "http", Host: c.Peer}}, []url.URL{{Scheme: "http", Host: c.Client}}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = peer, peer
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = client, client
	cfg.InitialCluster = c.InitialCluster
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = c.Name + "=http://" + c.Peer
	}
	cfg.InitialClusterToken = "sessionstore-test"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: start member %s: %w", c.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return &Member{Endpoint: "http://" + c.Client, e: e}, nil
	case err = <-e.Err():
	case <-time.After(timeout):
		e.Server.Stop()
		err = fmt.Errorf("not ready after %v", timeout)
	}
	e.Close()
	return nil, fmt.Errorf("etcdtest: member %s: %w", c.Name, err)
}

// Close stops the member.
func (m *Member) Close() { m.e.Close() }

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err) // no loopback: no test can run
	}
	defer l.Close()
	return l.Addr().String()
}

// StartSingle starts a single-member server named name, its data under
// dir, on free loopback ports. A port is free when picked, and another
// process may take it before the member binds it: then it tries again, on
// other ports, up to 3 times.
func StartSingle(name, dir string, timeout time.Duration) (*Member, error) {
	for attempt := 1; ; attempt++ {
		m, err := startMember(memberConfig{Name: name, Dir: filepath.Join(dir, strconv.Itoa(attempt)), Peer: freeAddr(), Client: freeAddr()}, timeout)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return m, err
		}
	}
}

// shared is the one single-member server of a test package.
var shared struct {
	once sync.Once
	m    *Member
	dir  string
	err  error
}

// Endpoint returns the client URL of the test package's shared etcd
// server, starting it on first use; Stop stops it (call it from TestMain).
func Endpoint(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "sessionstore-etcd-")
		if shared.err != nil {
			return
		}
		shared.m, shared.err = StartSingle("shared", shared.dir, 30*time.Second)
	})
	if shared.err != nil {
		t.Fatalf("etcdtest: %v", shared.err)
	}
	return shared.m.Endpoint
}

// Stop stops the shared server, if it started, and removes its data.
func Stop() {
	if shared.m != nil {
		shared.m.Close()
	}
	os.RemoveAll(shared.dir) // "": nothing
}

// NewClient returns a client of endpoints that logs nothing; the test
// closes it at its end.
func NewClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := Dial(endpoints...)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Dial returns a client of endpoints that logs nothing.
func Dial(endpoints ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
}

var prefixes atomic.Uint64

var unsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// Prefix returns a prefix no other test of the process uses, named after
// the test.
func Prefix(t testing.TB) string {
	name := unsafe.ReplaceAllString(t.Name(), "_")
	return fmt.Sprintf("/sessionstore-test/%d-%s", prefixes.Add(1), strings.Trim(name, "_"))
}
