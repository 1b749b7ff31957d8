package filestore_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/filestore"
)

// Remove deletes a record without a key: whatever key sealed it, even a
// record that does not open; the lock file stays; a missing record is
// ErrNotFound and creates no lock file.
func TestRemoveWithoutKey(t *testing.T) {
	ctx := ctxT(t)
	dir := filepath.Join(t.TempDir(), "s")
	s := openStore(t, dir, newKeyFile(t, false), filestore.WithoutWatcher())
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	require.NoError(t, s.Set(ctx, "client", sampleAuth()))
	other := openStore(t, dir, newKeyFile(t, false), filestore.WithoutWatcher())
	require.NoError(t, other.Set(ctx, "foreign", sampleAuth()))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "corrupt.age"), []byte("not an age file"), 0o600))

	for _, name := range []string{"server", "foreign", "corrupt"} {
		require.NoError(t, filestore.Remove(ctx, dir, name), name)
		assert.NoFileExists(t, filepath.Join(dir, name+".age"), name)
	}
	assert.FileExists(t, filepath.Join(dir, "server.lock"), "lock files are never deleted")
	names, err := s.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"client"}, names)
	_, err = s.Get(ctx, "server")
	assert.ErrorIs(t, err, sessionstore.ErrNotFound, "a Store sees the deletion")

	err = filestore.Remove(ctx, dir, "server")
	assert.ErrorIs(t, err, sessionstore.ErrNotFound, "already removed")
	err = filestore.Remove(ctx, dir, "nosuch")
	assert.ErrorIs(t, err, sessionstore.ErrNotFound)
	assert.NoFileExists(t, filepath.Join(dir, "nosuch.lock"), "a missing name creates no lock file")
	assert.ErrorIs(t, filestore.Remove(ctx, dir, ""), sessionstore.ErrInvalidAuthType)
}

// No name reaches outside the store directory: hostile names are escaped
// like every Store's, and find no record.
func TestRemoveHostileNames(t *testing.T) {
	ctx := ctxT(t)
	root := t.TempDir()
	dir := filepath.Join(root, "s")
	s := openStore(t, dir, newKeyFile(t, false), filestore.WithoutWatcher())
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	outside := filepath.Join(root, "outside.age")
	require.NoError(t, os.WriteFile(outside, []byte("not ours"), 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub.age"), 0o700))

	for _, name := range []string{"../outside", "..", ".", "/" + outside[:len(outside)-len(".age")], `..\outside`, "s/../server", "SERVER", "sub"} {
		err := filestore.Remove(ctx, dir, name)
		assert.Error(t, err, "%q", name)
		assert.NotErrorIs(t, err, sessionstore.ErrInvalidAuthType, "%q", name)
	}
	assert.FileExists(t, outside)
	assert.DirExists(t, filepath.Join(dir, "sub.age"), "not a record")
	_, err := s.Get(ctx, "server")
	assert.NoError(t, err)
}

// Remove takes the record's lock: while a writer holds it, Remove waits
// (until its context ends, removing nothing), and runs once it is
// released.
func TestRemoveTakesTheLock(t *testing.T) {
	ctx := ctxT(t)
	dir := filepath.Join(t.TempDir(), "s")
	s := openStore(t, dir, newKeyFile(t, false), filestore.WithoutWatcher())
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))

	holding, release := make(chan struct{}), make(chan struct{})
	updated := make(chan error, 1)
	go func() {
		_, err := s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
			close(holding)
			<-release
			cur.Scope = "updated"
			return cur, nil
		})
		updated <- err
	}()
	<-holding
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err := filestore.Remove(short, dir, "server")
	require.ErrorIs(t, err, context.DeadlineExceeded, "waits for the lock")
	assert.FileExists(t, filepath.Join(dir, "server.age"), "nothing removed")

	removed := make(chan error, 1)
	go func() { removed <- filestore.Remove(ctx, dir, "server") }()
	select {
	case err := <-removed:
		t.Fatalf("Remove returned %v while the lock was held", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-updated)
	require.NoError(t, <-removed)
	assert.NoFileExists(t, filepath.Join(dir, "server.age"))
}

// Remove never creates the directory, and refuses one that others can
// write to, as Open does.
func TestRemoveDirectory(t *testing.T) {
	ctx := ctxT(t)
	missing := filepath.Join(t.TempDir(), "nowhere")
	assert.ErrorIs(t, filestore.Remove(ctx, missing, "server"), os.ErrNotExist)
	assert.NoDirExists(t, missing)
	if runtime.GOOS == "windows" {
		return
	}
	dir := filepath.Join(t.TempDir(), "s")
	s := openStore(t, dir, newKeyFile(t, false), filestore.WithoutWatcher())
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	require.NoError(t, os.Chmod(dir, 0o777))
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	assert.ErrorIs(t, filestore.Remove(ctx, dir, "server"), sessionstore.ErrInsecurePermissions)
	assert.FileExists(t, filepath.Join(dir, "server.age"))
}
