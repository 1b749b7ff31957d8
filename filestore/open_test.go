package filestore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
)

// An Open that fails creates nothing: the keys are loaded and checked
// before the store directory (and its missing parents) is made.
func TestFailedOpenCreatesNothing(t *testing.T) {
	old := crypto.KeyFileWorkFactor
	crypto.KeyFileWorkFactor = 10
	t.Cleanup(func() { crypto.KeyFileWorkFactor = old })
	pq, err := crypto.GenerateKeyring(true)
	require.NoError(t, err)
	classic, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	protected := filepath.Join(t.TempDir(), "protected.key")
	require.NoError(t, crypto.CreateKeyFileWithPassphrase(protected, classic, "pass"))
	notAKey := filepath.Join(t.TempDir(), "not-a.key")
	require.NoError(t, os.WriteFile(notAKey, []byte("# nothing here\n"), 0o600))

	for name, opts := range map[string][]filestore.Option{
		"missing key file":      {filestore.WithKeyFile(filepath.Join(t.TempDir(), "missing.key"))},
		"key file without keys": {filestore.WithKeyFile(notAKey)},
		"no passphrase":         {filestore.WithKeyFile(protected)},
		"recipients of another kind": {filestore.WithKeyring(pq),
			filestore.WithRecipients(classic.Recipient())},
	} {
		t.Run(name, func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "new")
			dir := filepath.Join(parent, "sessions")
			s, err := filestore.Open(dir, opts...)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.NoDirExists(t, dir)
			assert.NoDirExists(t, parent, "nor its parents")
		})
	}

	// A good key file: the directory and its parents are made, 0700.
	parent := filepath.Join(t.TempDir(), "new")
	dir := filepath.Join(parent, "sessions")
	s := openStore(t, dir, newKeyFile(t, false))
	require.NoError(t, s.Set(ctxT(t), "server", sampleAuth()))
	for _, d := range []string{dir, parent} {
		fi, err := os.Stat(d)
		require.NoError(t, err)
		if os.PathSeparator == '/' {
			assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), d)
		}
	}
}

// An Open whose key file is fine but whose directory is not (a file in its
// place) fails with the directory named, and removes nothing of the
// caller's.
func TestOpenOverAFileFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions")
	require.NoError(t, os.WriteFile(path, []byte("not a directory"), 0o600))
	_, err := filestore.Open(path, filestore.WithKeyFile(newKeyFile(t, false)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.FileExists(t, path)
}
