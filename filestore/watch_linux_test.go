package filestore_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/filestore"
)

// inotifyInstances counts this process's inotify file descriptors.
func inotifyInstances(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// Every Store of a process shares one inotify instance: 300 watching
// Stores (more than the default 128 instances a user may have) add at
// most one.
func TestOneInotifyInstancePerProcess(t *testing.T) {
	ctx := ctxT(t)
	key := newKeyFile(t, false)
	before := inotifyInstances(t)
	root := t.TempDir()
	for i := range 300 {
		dir := filepath.Join(root, "s"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+"-"+time.Now().Format("150405.000000000"))
		s := openStore(t, dir, key)
		require.NoError(t, s.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "t"}))
		s.StartWatcher()
		require.Eventually(t, s.Watching, 5*time.Second, time.Millisecond, "store %d watches", i)
	}
	assert.LessOrEqual(t, inotifyInstances(t), before+1, "one inotify instance for every Store")
}

// A store directory replaced under a running Store (mv dir dir.old && mv
// dir.new dir, or removed and made again) drops the cache and is watched
// anew: the new directory's records and later writes are seen.
func TestStoreDirectoryReplacedIsFollowed(t *testing.T) {
	ctx := ctxT(t)
	root, key := t.TempDir(), newKeyFile(t, false)
	dir := filepath.Join(root, "sessions")
	reader := openStore(t, dir, key)
	require.NoError(t, openStore(t, dir, key).Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v0"}))
	warm(t, reader, "server", true)

	seen := func(v string) func() bool {
		return func() bool {
			got, err := reader.Get(ctx, "server")
			return err == nil && got.AccessToken == v
		}
	}
	// Swap in a directory prepared elsewhere.
	next := filepath.Join(root, "sessions.new")
	w := openStore(t, next, key, filestore.WithoutWatcher())
	require.NoError(t, w.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v1"}))
	require.NoError(t, os.Rename(dir, filepath.Join(root, "sessions.old")))
	require.NoError(t, os.Rename(next, dir))
	assert.Eventually(t, seen("v1"), 5*time.Second, time.Millisecond, "the new directory's record is seen")
	assert.Eventually(t, reader.Watching, 5*time.Second, time.Millisecond, "the new directory is watched")
	warm(t, reader, "server", true)
	require.NoError(t, openStore(t, dir, key).Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v2"}))
	assert.Eventually(t, seen("v2"), 5*time.Second, time.Millisecond, "a write to the new directory is seen")

	// Removed and made again.
	warm(t, reader, "server", true)
	require.NoError(t, os.RemoveAll(dir))
	w3 := openStore(t, dir, key)
	require.NoError(t, w3.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v3"}))
	assert.Eventually(t, seen("v3"), 5*time.Second, time.Millisecond, "a recreated directory's record is seen")
	assert.Eventually(t, reader.Watching, 5*time.Second, time.Millisecond)
	warm(t, reader, "server", true)
	require.NoError(t, w3.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v4"}))
	assert.Eventually(t, seen("v4"), 5*time.Second, time.Millisecond)
}

// On a network or FUSE file system inotify does not see what another
// mount writes: the Store turns its watcher off and validates every Get,
// so a value is never stale once the other mount's Set has returned. Two
// bindfs mounts of one directory stand in for two hosts' NFS mounts.
func TestNetworkFileSystemValidatesEveryGet(t *testing.T) {
	if _, err := exec.LookPath("bindfs"); err != nil {
		t.Skip("bindfs is not installed (.ci/run installs it where it can)")
	}
	root := t.TempDir()
	src := filepath.Join(root, "src")
	require.NoError(t, os.Mkdir(src, 0o700))
	mounts := []string{filepath.Join(root, "m1"), filepath.Join(root, "m2")}
	for _, m := range mounts {
		require.NoError(t, os.Mkdir(m, 0o700))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, "bindfs", src, m).CombinedOutput()
		cancel()
		if err != nil {
			t.Skipf("cannot mount with FUSE here: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("fusermount", "-u", m).Run() })
	}
	ctx := ctxT(t)
	key := newKeyFile(t, false)
	var logged syncBuffer
	a := openStore(t, mounts[0], key)
	b := openStore(t, mounts[1], key, filestore.WithLogger(newTextLogger(&logged)))
	assert.Contains(t, logged.String(), "watcher off", "Open logs why the watcher is off")
	assert.Contains(t, logged.String(), "fuse")

	require.NoError(t, a.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v0"}))
	for range 3 { // as warm as a Store can be
		_, err := b.Get(ctx, "server")
		require.NoError(t, err)
	}
	b.StartWatcher()
	for i := 1; i <= 20; i++ {
		v := "v" + string(rune('0'+i%10)) + strings.Repeat("x", i)
		require.NoError(t, a.Set(ctx, "server", sessionstore.AuthObject{AccessToken: v}))
		got, err := b.Get(ctx, "server") // at once: no waiting
		require.NoError(t, err)
		require.Equal(t, v, got.AccessToken, "the other mount's Set returned: its value, never a stale one")
	}
	assert.False(t, b.Watching())
}

// A store path that is a symlink, swapped atomically to another directory
// (ln -s new tmp && mv -T tmp link), is followed like a replaced
// directory.
func TestStoreSymlinkSwapIsFollowed(t *testing.T) {
	ctx := ctxT(t)
	root, key := t.TempDir(), newKeyFile(t, false)
	real1, real2 := filepath.Join(root, "real1"), filepath.Join(root, "real2")
	link := filepath.Join(root, "sessions")
	for _, d := range []string{real1, real2} {
		require.NoError(t, os.Mkdir(d, 0o700))
	}
	require.NoError(t, os.Symlink(real1, link))
	reader := openStore(t, link, key)
	require.NoError(t, openStore(t, real1, key).Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v1"}))
	require.NoError(t, openStore(t, real2, key).Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v2"}))
	warm(t, reader, "server", true)

	tmp := filepath.Join(root, "tmp-link")
	require.NoError(t, os.Symlink(real2, tmp))
	require.NoError(t, os.Rename(tmp, link))
	assert.Eventually(t, func() bool {
		got, err := reader.Get(ctx, "server")
		return err == nil && got.AccessToken == "v2"
	}, 5*time.Second, time.Millisecond, "the directory the link now names is read")
	assert.Eventually(t, reader.Watching, 5*time.Second, time.Millisecond)
	warm(t, reader, "server", true)
	require.NoError(t, openStore(t, real2, key).Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v3"}))
	assert.Eventually(t, func() bool {
		got, err := reader.Get(ctx, "server")
		return err == nil && got.AccessToken == "v3"
	}, 5*time.Second, time.Millisecond, "writes to the new target are seen")
}
