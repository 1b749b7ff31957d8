//go:build !windows

package filestore_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
)

// Modes do not depend on the umask: too permissive or too strict, the
// store's files are 0600 and its directory 0700.
func TestModesIndependentOfUmask(t *testing.T) {
	for _, mask := range []int{0o000, 0o022, 0o277} {
		t.Run(os.FileMode(mask).String(), func(t *testing.T) {
			ctx := ctxT(t)
			key := newKeyFile(t, false)
			old := syscall.Umask(mask)
			defer syscall.Umask(old)
			dir := filepath.Join(t.TempDir(), "store")
			s := openStore(t, dir, key)
			require.NoError(t, s.Set(ctx, "server", sampleAuth()))
			k, err := crypto.GenerateKeyring(false)
			require.NoError(t, err)
			newKey := filepath.Join(t.TempDir(), "new.key")
			require.NoError(t, crypto.CreateKeyFile(newKey, k))
			require.NoError(t, crypto.ReplaceKeyFile(newKey, k))
			for path, want := range map[string]os.FileMode{
				dir:                               0o700,
				filepath.Join(dir, "server.age"):  0o600,
				filepath.Join(dir, "server.lock"): 0o600,
				newKey:                            0o600,
			} {
				fi, err := os.Stat(path)
				require.NoError(t, err)
				assert.Equal(t, want, fi.Mode().Perm(), "%s under umask %04o", path, mask)
			}
		})
	}
}

// A key file or store directory owned by another user (not root) is
// refused: that user could swap the key or the records.
func TestOwnedByAnotherUserIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	const nobody = 65534
	key := newKeyFile(t, false)
	dir := t.TempDir()
	require.NoError(t, os.Chown(dir, nobody, nobody))
	_, err := filestore.Open(dir, filestore.WithKeyFile(key))
	assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
	assert.ErrorContains(t, err, "owned by uid 65534")

	require.NoError(t, os.Chown(dir, 0, 0))
	require.NoError(t, os.Chown(key, nobody, nobody))
	_, err = filestore.Open(dir, filestore.WithKeyFile(key))
	assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
	assert.ErrorContains(t, err, key)

	require.NoError(t, os.Chown(key, 0, 0))
	s, err := filestore.Open(dir, filestore.WithKeyFile(key))
	require.NoError(t, err, "owned by root (this user) is fine")
	s.Close()
}

// Directory permissions are checked on every write, not only at Open:
// after a chmod that lets others write, an open Store refuses to write and
// the record stays as it was.
func TestDirectoryPermissionsRecheckedOnWrite(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	s := openStore(t, dir, newKeyFile(t, false))
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	before, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o777))
	t.Cleanup(func() { os.Chmod(dir, 0o700) })

	next := sampleAuth()
	next.AccessToken = "changed"
	err = s.Set(ctx, "server", next)
	assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
	assert.ErrorContains(t, err, dir)
	assert.ErrorIs(t, s.Delete(ctx, "server"), sessionstore.ErrInsecurePermissions)
	after, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	assert.Equal(t, before, after)

	require.NoError(t, os.Chmod(dir, 0o700))
	assert.NoError(t, s.Set(ctx, "server", next), "writes resume once the directory is private again")
}
