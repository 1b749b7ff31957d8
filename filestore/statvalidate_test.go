package filestore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// Without a watcher, every Get validates its cached entry against the
// record file, and sees a change at once. While the file is younger than
// the racy window, even a change made in place, with the same size and the
// old modification time put back (where a coarse change time may not tell
// either), is seen: the file's bytes are compared. Once the file is older
// than the window, its identity stands for them (one fstatat: the
// performance report's "Get, cache hit, WithoutWatcher" row, against a
// floor of one fstatat), and a rewrite of the same size is still seen.
func TestWithoutWatcherSeesEveryChange(t *testing.T) {
	t.Cleanup(fsutil.SetRacyWindow(time.Minute)) // the first part is within it
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	reader := openStore(t, dir, key, filestore.WithoutWatcher())
	writer := openStore(t, dir, key, filestore.WithoutWatcher())
	path := filepath.Join(dir, "server.age")

	// Records of one size, in the order written, by a Store on another
	// directory with the same key (a record's size varies with the digits
	// of its write time).
	otherDir := t.TempDir()
	other := openStore(t, otherDir, key, filestore.WithoutWatcher())
	bySize := map[int][]string{}
	records := map[string][]byte{}
	var same []string
	for i := 0; len(same) < 6; i++ {
		require.Less(t, i, 100, "no six records of one size")
		v := fmt.Sprintf("v%03d", i)
		require.NoError(t, other.Set(ctx, "server", sessionstore.AuthObject{AccessToken: v}))
		data, err := os.ReadFile(filepath.Join(otherDir, "server.age"))
		require.NoError(t, err)
		records[v] = data
		bySize[len(data)] = append(bySize[len(data)], v)
		same = bySize[len(data)]
	}
	require.NoError(t, os.WriteFile(path, records[same[0]], 0o600))
	for i, v := range same[1:] {
		got, err := reader.Get(ctx, "server") // cached
		require.NoError(t, err)
		require.Equal(t, same[i], got.AccessToken)
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, records[v], 0o600)) // in place: the same inode
		require.NoError(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
		got, err = reader.Get(ctx, "server")
		require.NoError(t, err)
		assert.Equal(t, v, got.AccessToken, "a change in place within the racy window is seen by the next Get")
	}
	last := same[len(same)-1]

	fsutil.SetRacyWindow(20 * time.Millisecond)
	time.Sleep(2 * fsutil.RacyWindow()) // the file is now older than the window
	for range 10 {
		got, err := reader.Get(ctx, "server")
		require.NoError(t, err)
		assert.Equal(t, last, got.AccessToken)
	}
	for _, v := range []string{"v100", "v101", "v102"} {
		require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: v}))
		got, err := reader.Get(ctx, "server")
		require.NoError(t, err)
		assert.Equal(t, v, got.AccessToken, "a rewrite is seen by the next Get")
	}
}

// A writer checks the key file under the record lock, by its identity
// once the file is older than the racy window (two fstatat calls instead
// of reading it: the performance report's "Set: system calls" row), and
// sees a rotation at once.
func TestWriterWithOldKeyFileSeesRotation(t *testing.T) {
	t.Cleanup(fsutil.SetRacyWindow(20 * time.Millisecond))
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	time.Sleep(2 * fsutil.RacyWindow())
	s := openStore(t, dir, key)
	for range 3 {
		require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	}

	// Rotate: the very next write seals to the new primary.
	_, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
	require.NoError(t, err)
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	ring, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	statuses, err := filestore.Check(ctx, key, []string{dir}, filestore.CheckOptions{})
	require.NoError(t, err)
	require.Len(t, statuses, 1)
	assert.Equal(t, 0, statuses[0].Key, "sealed to the new primary %s", ring.PublicKey(0))
	assert.Equal(t, ring.PublicKey(0), s.Keyring().PublicKey(0))
}
