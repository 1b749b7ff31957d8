package filestore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// Without a watcher, a cached entry read long enough after its file was
// written is validated by one fstatat, reading nothing; a rewrite of the
// same size is still seen by the very next Get.
func TestWithoutWatcherValidatesByIdentity(t *testing.T) {
	t.Cleanup(fsutil.SetRacyWindow(20 * time.Millisecond))
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	reader := openStore(t, dir, key, filestore.WithoutWatcher())
	writer := openStore(t, dir, key, filestore.WithoutWatcher())
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v1"}))

	_, err := reader.Get(ctx, "server")
	require.NoError(t, err)
	reads := reader.Reads()
	_, err = reader.Get(ctx, "server")
	require.NoError(t, err)
	assert.Equal(t, reads+1, reader.Reads(), "within the racy window the bytes are read")

	time.Sleep(2 * fsutil.RacyWindow()) // the file is now older than the window
	_, err = reader.Get(ctx, "server")  // reads once more: its identity is now safe
	require.NoError(t, err)
	reads = reader.Reads()
	for range 10 {
		got, err := reader.Get(ctx, "server")
		require.NoError(t, err)
		assert.Equal(t, "v1", got.AccessToken)
	}
	assert.Equal(t, reads, reader.Reads(), "validated by identity: no read")

	for _, v := range []string{"v2", "v3", "v4"} { // same size each time
		require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: v}))
		got, err := reader.Get(ctx, "server")
		require.NoError(t, err)
		assert.Equal(t, v, got.AccessToken, "a rewrite is seen by the next Get")
	}
}

// A writer checks the key file under the record lock by its identity once
// that is safe (two fstatat calls instead of reading it), and still sees a
// rotation at once.
func TestWriterChecksKeyFileByIdentity(t *testing.T) {
	t.Cleanup(fsutil.SetRacyWindow(20 * time.Millisecond))
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	time.Sleep(2 * fsutil.RacyWindow())
	s := openStore(t, dir, key)
	for range 3 {
		require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	}
	assert.True(t, s.KeyFilesSafe(), "the key files' identity stands for their bytes")

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
