package filestore_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// A mode is one of the two ways a Store keeps its cache coherent; every
// behaviour test runs in both.
type mode struct {
	name string
	opts []filestore.Option
}

var modes = []mode{
	{"watch", nil},
	{"nowatch", []filestore.Option{filestore.WithoutWatcher()}},
}

func forEachMode(t *testing.T, f func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

// newKeyFile writes a freshly generated key file (mode 0600) into a temp
// directory and returns its path.
func newKeyFile(t testing.TB, pq bool) string {
	t.Helper()
	k, err := crypto.GenerateKeyring(pq)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "sessionstore.key")
	require.NoError(t, crypto.CreateKeyFile(path, k))
	return path
}

// testKeyFile copies a test-only key from testdata/keys, with mode 0600
// (git does not keep modes).
func testKeyFile(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "keys", name))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// openStore opens a Store on dir with keyFile and the mode's options,
// closed at the end of the test.
func openStore(t testing.TB, dir, keyFile string, opts ...filestore.Option) *filestore.Store {
	t.Helper()
	s, err := filestore.Open(dir, append([]filestore.Option{filestore.WithKeyFile(keyFile)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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

// secrets are the token strings no error or log line may contain.
var secrets = []string{"SECRET", "AGE-SECRET-KEY"}

// waitFor polls cond every millisecond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// mallocs returns the heap allocations made while f ran once (by every
// goroutine). Reading a record file allocates a few; decrypting one, about
// 150; a cache hit, none.
func mallocs(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// decryptMallocs returns what a Get that decrypts name's record in dir
// allocates: the first Get of a fresh Store.
func decryptMallocs(t testing.TB, dir, key, name string) uint64 {
	t.Helper()
	s := openStore(t, dir, key, filestore.WithoutWatcher())
	var err error
	n := mallocs(func() { _, err = s.Get(context.Background(), name) })
	require.NoError(t, err)
	return n
}

// countWatchers gives a Store a watcher of its own (not the process's
// shared one) and counts the inotify instances (fsnotify watchers) it asks
// for; last is the latest one it got.
func countWatchers() (opt filestore.Option, asked *atomic.Int32, last *atomic.Pointer[fsnotify.Watcher]) {
	asked, last = new(atomic.Int32), new(atomic.Pointer[fsnotify.Watcher])
	opt = filestore.WithWatcherFactory(func() (*fsnotify.Watcher, error) {
		asked.Add(1)
		w, err := fsnotify.NewWatcher()
		if err == nil {
			last.Store(w)
		}
		return w, err
	})
	return opt, asked, last
}

// sealFor seals sampleAuth for name with ring, as a Store would.
func sealFor(ring *crypto.Keyring, name string) ([]byte, error) {
	data, err := wire.EncodeAuth(sampleAuth()) // the stored form: AuthObject's own JSON redacts
	if err != nil {
		return nil, err
	}
	return envelope.Seal(ring, &envelope.Record{AuthType: name, Seq: 1, Written: time.Now(), Auth: data})
}

// newTextLogger logs everything, as text, to w.
func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
