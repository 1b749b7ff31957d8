package filestore_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

// warm makes s cache authType and, in watch mode, waits until the watcher
// vouches for the entry, so that the next Get is a pure memory hit.
func warm(t *testing.T, s *filestore.Store, authType string, watch bool) {
	t.Helper()
	ctx := ctxT(t)
	_, err := s.Get(ctx, authType)
	require.NoError(t, err)
	_, err = s.Get(ctx, authType) // a second Get starts the watcher
	require.NoError(t, err)
	if watch {
		waitFor(t, "the watcher", s.Watching)
		_, err = s.Get(ctx, authType) // validated after the watch: trusted
		require.NoError(t, err)
	}
}

func TestOtherStoresWritesAreSeen(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		dir, key := t.TempDir(), newKeyFile(t, false)
		reader, writer := openStore(t, dir, key, m.opts...), openStore(t, dir, key, m.opts...)
		require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v0"}))
		warm(t, reader, "server", m.name == "watch")
		for _, v := range []string{"v1", "v2", "v3"} {
			require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: v}))
			waitFor(t, v, func() bool {
				got, err := reader.Get(ctx, "server")
				require.NoError(t, err)
				return got.AccessToken == v
			})
		}
		require.NoError(t, writer.Delete(ctx, "server"))
		waitFor(t, "the delete", func() bool {
			_, err := reader.Get(ctx, "server")
			return errors.Is(err, sessionstore.ErrNotFound)
		})
	})
}

// Without a watcher, a change is seen by the very next Get: it compares
// the file's bytes, not a stat (inodes are reused, mtimes coarse).
func TestFallbackSeesChangeAtNextGet(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	watchers, asked, _ := countWatchers()
	reader := openStore(t, dir, key, filestore.WithoutWatcher(), watchers)
	writer := openStore(t, dir, key, filestore.WithoutWatcher())
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "aaaa"}))
	warm(t, reader, "server", false)
	fi0, err := os.Stat(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "bbbb"}))
	// Same size, and make the mtime equal too: a stat cannot tell.
	require.NoError(t, os.Chtimes(filepath.Join(dir, "server.age"), fi0.ModTime(), fi0.ModTime()))
	got, err := reader.Get(ctx, "server")
	require.NoError(t, err)
	assert.Equal(t, "bbbb", got.AccessToken)
	assert.Zero(t, asked.Load(), "WithoutWatcher asks for no inotify instance")
}

// A Store's own write keeps its cached entry: a Get after the Store's Set
// costs no decryption (about 150 allocations), in either mode.
func TestOwnWriteKeepsItsEntry(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		dir, key := t.TempDir(), newKeyFile(t, false)
		s := openStore(t, dir, key, m.opts...)
		require.NoError(t, s.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v0"}))
		warm(t, s, "server", m.name == "watch")
		for _, v := range []string{"v1", "v2", "v3"} {
			require.NoError(t, s.Set(ctx, "server", sessionstore.AuthObject{AccessToken: v}))
			got, err := s.Get(ctx, "server")
			require.NoError(t, err)
			assert.Equal(t, v, got.AccessToken)
		}

		i := 3
		set := func() {
			i++
			if err := s.Set(ctx, "server", sessionstore.AuthObject{AccessToken: fmt.Sprint("v", i)}); err != nil {
				t.Fatal(err)
			}
		}
		setOnly := testing.AllocsPerRun(10, set)
		setGet := testing.AllocsPerRun(10, func() {
			set()
			if got, err := s.Get(ctx, "server"); err != nil || got.AccessToken != fmt.Sprint("v", i) {
				t.Fatalf("Get after Set: %v, the Set's value: %v", err, got.AccessToken == fmt.Sprint("v", i))
			}
		})
		decrypt := decryptMallocs(t, dir, key, "server")
		t.Logf("allocations: Set %.0f, Set then Get %.0f; a decrypting Get: %d", setOnly, setGet, decrypt)
		assert.Less(t, setGet, setOnly+float64(decrypt)/2, "Set then Get decrypts the Store's own record")
	})
}

// A Get that the watcher vouches for is a memory hit: no allocation, so no
// file read and no decryption. With Extra, it allocates the caller's copy
// and nothing more.
func TestTrustedHitIsMemoryOnly(t *testing.T) {
	ctx := ctxT(t)
	s := openStore(t, t.TempDir(), newKeyFile(t, false))
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	warm(t, s, "server", true)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := s.Get(ctx, "server"); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs, "a cache hit allocates nothing")

	a := sampleAuth()
	a.Extra = map[string]any{"k": "v"}
	require.NoError(t, s.Set(ctx, "extra", a))
	warm(t, s, "extra", true)
	got, err := s.Get(ctx, "extra")
	require.NoError(t, err)
	assert.True(t, got.Equal(a), "Get returns what was Set, Extra too")
	get := testing.AllocsPerRun(100, func() {
		if _, err := s.Get(ctx, "extra"); err != nil {
			t.Fatal(err)
		}
	})
	clone := testing.AllocsPerRun(100, func() { sink = got.Clone() })
	assert.Equal(t, clone, get, "a cache hit with Extra allocates the caller's copy alone")
}

// A short-lived process (Open, one Get, Close) asks for no inotify
// instance.
func TestShortLivedProcessNeverStartsWatcher(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	w := openStore(t, dir, key)
	require.NoError(t, w.Set(ctx, "server", sampleAuth()))

	watchers, asked, _ := countWatchers()
	s, err := filestore.Open(dir, filestore.WithKeyFile(key), watchers)
	require.NoError(t, err)
	_, err = s.Get(ctx, "server")
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // time for a watcher to come up, if one were started
	require.NoError(t, s.Close())
	assert.Zero(t, asked.Load(), "Open + Get + Close pays for no watcher")
}

func TestWatcherUnavailableFallsBack(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	var asked atomic.Int32
	noInotify := filestore.WithWatcherFactory(func() (*fsnotify.Watcher, error) {
		asked.Add(1)
		return nil, errors.New("too many open files")
	})
	reader := openStore(t, dir, key, noInotify)
	writer := openStore(t, dir, key)
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v0"}))
	warm(t, reader, "server", false)
	waitFor(t, "the Store to ask for an inotify instance", func() bool { return asked.Load() > 0 })
	require.False(t, reader.Watching())
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v1"}))
	got, err := reader.Get(ctx, "server")
	require.NoError(t, err)
	assert.Equal(t, "v1", got.AccessToken, "without a watcher the next Get sees the change")
}

// After the watcher reports lost events, the cache is not trusted: the
// next Get sees a change whose event was lost.
func TestOverflowDropsTheCache(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	watchers, _, watcher := countWatchers()
	s := openStore(t, dir, key, watchers)
	writer := openStore(t, dir, key, filestore.WithoutWatcher())
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v0"}))
	warm(t, s, "server", true)

	// Lose the store directory's events: remove its watch behind the
	// Store's back, then write.
	require.NoError(t, watcher.Load().Remove(dir))
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v1"}))
	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	require.Equal(t, "v0", got.AccessToken, "the change's event was lost")

	s.Overflow()
	got, err = s.Get(ctx, "server")
	require.NoError(t, err)
	assert.Equal(t, "v1", got.AccessToken, "after an overflow the next Get goes to the file")
}

// rewriteKeyFile atomically replaces the key file with k, as rekey does.
func rewriteKeyFile(t *testing.T, path string, k *crypto.Keyring) {
	t.Helper()
	require.NoError(t, crypto.ReplaceKeyFile(path, k))
}

func TestKeyFileChangeIsFollowed(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		dir, key := t.TempDir(), newKeyFile(t, false)
		s := openStore(t, dir, key, m.opts...)
		require.NoError(t, s.Set(ctx, "server", sampleAuth()))
		warm(t, s, "server", m.name == "watch")
		old := s.Keyring()

		// Rotation step 1: the new primary first, the old key after it.
		id, err := crypto.GenerateIdentity(false)
		require.NoError(t, err)
		rotated, err := old.Rotate(id)
		require.NoError(t, err)
		rewriteKeyFile(t, key, rotated)
		if m.name == "watch" {
			waitFor(t, "the key reload", func() bool { return s.Keyring().PublicKey(0) == rotated.PublicKey(0) })
		}

		// A writer never seals to a retired key: it checks under the lock.
		require.NoError(t, s.Set(ctx, "server", sampleAuth()))
		assert.Equal(t, rotated.PublicKey(0), s.Keyring().PublicKey(0))
		data, err := os.ReadFile(filepath.Join(dir, "server.age"))
		require.NoError(t, err)
		_, idx, err := envelope.Open(rotated.PrimaryOnly(), data, "", "server")
		require.NoError(t, err, "sealed to the new primary")
		assert.Equal(t, 0, idx)
	})
}

// A record that does not open with the loaded keys makes the Store reload
// the key file once and retry: a rotation may just have happened.
func TestWrongKeyReloadsOnceAndRetries(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	reader := openStore(t, dir, key, filestore.WithoutWatcher())

	newRing, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	rotated, err := newRing.Rotate(newRing.Primary())
	require.NoError(t, err)
	rewriteKeyFile(t, key, rotated) // the old key is retired entirely
	writer := openStore(t, dir, key)
	require.NoError(t, writer.Set(ctx, "server", sampleAuth()))

	got, err := reader.Get(ctx, "server")
	require.NoError(t, err, "the reader reloads the key file and opens the record")
	assert.True(t, got.Equal(sampleAuth()), "the session reads back")

	// A record no key opens, even after the reload, is sessionstore.ErrWrongKey.
	foreign, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := sealFor(foreign, "client")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "client.age"), ct, 0o600))
	_, err = reader.Get(ctx, "client")
	assert.ErrorIs(t, err, sessionstore.ErrWrongKey)
}

func TestBrokenKeyFileRewriteKeepsLoadedKeys(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	s := openStore(t, dir, key)
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	warm(t, s, "server", true)
	pub := s.Keyring().PublicKey(0)
	require.NoError(t, os.WriteFile(key, []byte("# no identity here\n"), 0o600))
	err := s.Set(ctx, "server", sampleAuth())
	assert.Error(t, err, "a writer refuses to seal when the key file does not load")
	assert.Equal(t, pub, s.Keyring().PublicKey(0))
	got, err := s.Get(ctx, "server")
	require.NoError(t, err, "reads go on with the loaded keys")
	assert.True(t, got.Equal(sampleAuth()), "the session reads back")
}
