//go:build !windows

package filestore_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/filestore"
)

// within fails the test if f has not returned after a generous bound: a
// hang, not a slow call, is what it catches.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s blocked on a FIFO", what)
	}
}

// Nothing the store opens can block: a FIFO in place of a record, lock or
// temp file is an error at once (the temp file, only ever ours, is
// replaced), and the data stays as it was.
func TestFIFOsNeverBlock(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		dir := t.TempDir()
		s := openStore(t, dir, newKeyFile(t, false), m.opts...)

		require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "rec.age"), 0o600))
		within(t, "Get", func() {
			_, err := s.Get(ctx, "rec")
			assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
			assert.ErrorContains(t, err, filepath.Join(dir, "rec.age"))
		})
		within(t, "Set over a FIFO record", func() {
			assert.ErrorIs(t, s.Set(ctx, "rec", sampleAuth()), sessionstore.ErrInsecurePermissions)
		})
		fi, err := os.Lstat(filepath.Join(dir, "rec.age"))
		require.NoError(t, err)
		assert.Equal(t, os.ModeNamedPipe, fi.Mode().Type(), "left as it was")

		require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "lk.lock"), 0o600))
		within(t, "Set with a FIFO lock", func() {
			err := s.Set(ctx, "lk", sampleAuth())
			assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
			assert.ErrorContains(t, err, filepath.Join(dir, "lk.lock"))
		})

		require.NoError(t, syscall.Mkfifo(filepath.Join(dir, ".tmp.tmp-0"), 0o600))
		within(t, "Set with a FIFO temp file", func() {
			require.NoError(t, s.Set(ctx, "tmp", sampleAuth()), "the temp name is the lock holder's: replaced")
		})
		got, err := s.Get(ctx, "tmp")
		require.NoError(t, err)
		assert.True(t, got.AccessToken == sampleAuth().AccessToken, "the session reads back")
	})
}

// A watcher that meets a FIFO keeps serving every other record.
func TestWatcherSurvivesFIFO(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	reader, writer := openStore(t, dir, key), openStore(t, dir, key)
	for _, name := range []string{"a", "b"} {
		require.NoError(t, writer.Set(ctx, name, sampleAuth()))
		_, err := reader.Get(ctx, name)
		require.NoError(t, err)
	}
	reader.StartWatcher()
	require.Eventually(t, reader.Watching, 5*time.Second, time.Millisecond)
	for _, name := range []string{"a", "b"} { // trusted, cached entries
		_, err := reader.Get(ctx, name)
		require.NoError(t, err)
	}

	// Rename a FIFO over a's cached record: the watcher looks at it.
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	require.NoError(t, os.Rename(filepath.Join(dir, "fifo"), filepath.Join(dir, "a.age")))
	next := sampleAuth()
	next.AccessToken = "b-changed"
	require.NoError(t, writer.Set(ctx, "b", next))
	assert.Eventually(t, func() bool {
		got, err := reader.Get(ctx, "b")
		return err == nil && got.AccessToken == "b-changed"
	}, 5*time.Second, time.Millisecond, "b's change is seen after the watcher met a's FIFO")
	within(t, "Get of the FIFO", func() {
		_, err := reader.Get(ctx, "a")
		assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
	})
}

// Check and Rotate report a FIFO or symlink in place of a record instead
// of skipping it, and never block on it.
func TestCheckReportsNonRegularRecords(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	seedStore(t, dir, key, 2)
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo.age"), 0o600))
	require.NoError(t, os.Symlink(filepath.Join(dir, "rec-0.age"), filepath.Join(dir, "link.age")))
	keyBefore, err := os.ReadFile(key)
	require.NoError(t, err)
	within(t, "Check", func() {
		statuses, err := filestore.Check(ctx, key, []string{dir}, filestore.CheckOptions{})
		require.NoError(t, err)
		bad := map[string]error{}
		for _, st := range statuses {
			if st.Err != nil {
				bad[st.AuthType] = st.Err
			}
		}
		assert.ErrorIs(t, bad["fifo"], sessionstore.ErrInsecurePermissions)
		assert.ErrorIs(t, bad["link"], sessionstore.ErrInsecurePermissions)
		assert.Len(t, bad, 2, "the regular records are fine")
	})
	within(t, "Rotate", func() {
		_, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
		assert.ErrorIs(t, err, filestore.ErrRotationIncomplete)
		assert.ErrorContains(t, err, filepath.Join(dir, "fifo.age"))
	})
	keyAfter, err := os.ReadFile(key)
	require.NoError(t, err)
	assert.Equal(t, keyBefore, keyAfter)
}
