package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/pgtest"
	"github.com/sessionstore/sessionstore/pgstore"
)

// The multi-process tests re-execute the test binary: TestMain runs the
// child's role instead of the tests when childEnv is set.
const childEnv = "SESSIONSTORE_PG_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
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

var namespaces atomic.Int64

// env is one test's database: the shared cluster, a namespace of the
// test's own and a key file.
type env struct {
	url, ns, key string
}

func newEnv(t testing.TB) env {
	t.Helper()
	c := pgtest.Shared(t)
	return env{url: c.URL(), ns: fmt.Sprintf("%s-%d", t.Name(), namespaces.Add(1)), key: newKeyFile(t)}
}

// pool returns a pool of the test's own, closed at its end.
func (e env) pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), e.url)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// open opens a Store on the env's namespace with its key file, on a pool
// of its own (as another process would), closed at the test's end.
func (e env) open(t testing.TB, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(ctxT(t), e.pool(t), e.ns, append([]pgstore.Option{pgstore.WithKeyFile(e.key)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// waitFor polls cond until it holds, failing the test after 20 s.
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
