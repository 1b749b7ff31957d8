package filestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
)

// TestNoSecretInErrorsOrLogs walks every error path the fixtures reach and
// checks that no error text and no log line holds a token or key material.
func TestNoSecretInErrorsOrLogs(t *testing.T) {
	ctx := ctxT(t)
	var logs syncBuffer // the watcher goroutines log too
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir, key := t.TempDir(), newKeyFile(t, false)
	s := openStore(t, dir, key, filestore.WithLogger(logger))
	var errs []error
	collect := func(err error) {
		t.Helper()
		require.Error(t, err)
		errs = append(errs, err)
	}
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	require.NoError(t, s.Set(ctx, "client", sampleAuth()))
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("a session", "auth", sampleAuth())

	// Every kind of bad record, read and updated.
	path := filepath.Join(dir, "server.age")
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, bad := range badRecords(t, dir) {
		require.NoError(t, os.WriteFile(path, bad.data, 0o600))
		fresh := openStore(t, dir, key, filestore.WithLogger(logger))
		_, err := fresh.Get(ctx, "server")
		collect(err)
		_, err = fresh.Update(ctx, "server", increment)
		collect(err)
	}
	require.NoError(t, os.WriteFile(path, good, 0o600))

	// A rollback.
	r := openStore(t, dir, key, filestore.WithLogger(logger))
	_, err = r.Get(ctx, "server")
	require.NoError(t, err)
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	_, err = r.Get(ctx, "server")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, good, 0o600))
	waitFor(t, "the rollback", func() bool { _, err = r.Get(ctx, "server"); return err != nil })
	collect(err)

	// A failing refresh; no session; a refresher returning nothing.
	failing := func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return nil, errors.New("provider down")
	}
	expired := sampleAuth()
	expired.Expiry = expired.Expiry.AddDate(-1, 0, 0)
	require.NoError(t, s.Set(ctx, "expired", expired))
	_, err = sessionstore.TokenSource(ctx, s, "expired", failing).Token()
	collect(err)
	_, err = sessionstore.TokenSource(ctx, s, "none", failing).Token()
	collect(err)
	_, err = sessionstore.TokenSource(ctx, s, "expired", func(context.Context, *oauth2.Token) (*oauth2.Token, error) { return &oauth2.Token{}, nil }).Token()
	collect(err)

	// Key file trouble: broken, too open; a symlinked record; a closed store.
	keyData, err := os.ReadFile(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(key, []byte("AGE-SECRET-KEY-1BROKENSECRETMATERIAL\n"), 0o600))
	collect(s.Set(ctx, "server", sampleAuth()))
	_, err = crypto.LoadKeyring(key)
	collect(err)
	require.NoError(t, os.WriteFile(key, keyData, 0o600))
	if os.PathSeparator == '/' {
		require.NoError(t, os.Chmod(key, 0o644))
	}
	if _, err = filestore.Open(dir, filestore.WithKeyFile(key)); os.PathSeparator == '/' {
		collect(err)
	}
	require.NoError(t, os.Chmod(key, 0o600))
	if os.PathSeparator == '/' {
		require.NoError(t, os.Symlink(filepath.Join(dir, "client.age"), filepath.Join(dir, "link.age")))
		_, err = s.Get(ctx, "link")
		collect(err)
	}
	_, err = sessionstore.ReadPodioJSFile(writeTemp(t, `{"accessToken":"at-SECRET-podio","expiresIn":`))
	collect(err)
	closed := openStore(t, dir, key)
	closed.Close()
	_, err = closed.Get(ctx, "server")
	collect(err)

	require.GreaterOrEqual(t, len(errs), 20)
	for _, err := range errs {
		for _, form := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			for _, secret := range append(secrets, "BROKENSECRET", string(keyData[strings.Index(string(keyData), "AGE-SECRET"):][:30])) {
				assert.NotContains(t, form, secret)
			}
		}
	}
	for _, secret := range secrets {
		assert.NotContains(t, logs.String(), secret, "log output")
	}
	assert.Contains(t, logs.String(), "[redacted]", "the logged session was redacted, not dropped")
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
