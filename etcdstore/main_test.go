package etcdstore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/etcdtest"
	"github.com/sessionstore/sessionstore/internal/testplugin"
)

// The multi-host tests re-execute the test binary: TestMain runs the
// child's role instead of the tests when childEnv is set.
const childEnv = "SESSIONSTORE_ETCD_CHILD"

func TestMain(m *testing.M) {
	etcdtest.MaybeRunMember() // a member of a cluster of processes (failover_test.go)
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	code := m.Run()
	etcdtest.Stop()
	testplugin.Cleanup()
	os.Exit(code)
}

// newKeyFile writes a freshly generated key file (mode 0600) into a temp
// directory and returns its path.
func newKeyFile(t testing.TB) string {
	t.Helper()
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "sessionstore.key")
	require.NoError(t, crypto.CreateKeyFile(path, k))
	return path
}

// testKeyFile copies a test-only key from testdata/keys, with mode 0600.
func testKeyFile(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "keys", name))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// env is one test's etcd: the shared server's endpoint and a fresh prefix.
type env struct {
	endpoint, prefix, key string
}

func newEnv(t testing.TB) env {
	t.Helper()
	return env{endpoint: etcdtest.Endpoint(t), prefix: etcdtest.Prefix(t), key: newKeyFile(t)}
}

// client returns a new client of the test's server (another "host").
func (e env) client(t testing.TB) *clientv3.Client {
	return etcdtest.NewClient(t, e.endpoint)
}

// open opens a Store on a new client with the env's key file, closed at
// the end of the test.
func (e env) open(t testing.TB, opts ...etcdstore.Option) *etcdstore.Store {
	t.Helper()
	return openOn(t, e.client(t), e.prefix, append([]etcdstore.Option{etcdstore.WithKeyFile(e.key)}, opts...)...)
}

func openOn(t testing.TB, c *clientv3.Client, prefix string, opts ...etcdstore.Option) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.Open(ctxT(t), c, prefix, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sampleAuth() sessionstore.AuthObject {
	return sessionstore.AuthObject{
		AccessToken:   "at-SECRET-access",
		RefreshToken:  "rt-SECRET-refresh",
		TokenType:     "Bearer",
		Expiry:        time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		Scope:         "global:all",
		Ref:           sessionstore.Ref{Type: "user", ID: 123},
		TransferToken: "tt-SECRET-transfer",
	}
}

// waitFor polls cond every few milliseconds until it holds or 20 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
