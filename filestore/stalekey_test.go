package filestore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
)

// A Store with fixed keys (WithKeyring) that missed a rotation must not
// seal to the retired key: Set over the resealed record is ErrWrongKey,
// the record is unchanged, and every error says a rotation may have
// happened and that WithKeyFile follows rotations.
func TestStaleKeyringSetIsWrongKeyAndChangesNothing(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	ring, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	stale, err := filestore.Open(dir, filestore.WithKeyring(ring))
	require.NoError(t, err)
	t.Cleanup(func() { stale.Close() })
	require.NoError(t, stale.Set(ctx, "server", sampleAuth()))

	_, err = filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
	require.NoError(t, err)
	path := filepath.Join(dir, "server.age")
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	next := sampleAuth()
	next.AccessToken = "sealed-to-a-retired-key"
	err = stale.Set(ctx, "server", next)
	require.ErrorIs(t, err, sessionstore.ErrWrongKey)
	assert.ErrorContains(t, err, "rotated")
	assert.ErrorContains(t, err, "WithKeyFile")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the record is unchanged")

	_, err = stale.Update(ctx, "server", increment)
	assert.ErrorIs(t, err, sessionstore.ErrWrongKey)
	assert.ErrorContains(t, err, "WithKeyFile")

	fresh := openStore(t, dir, key)
	got, err := fresh.Get(ctx, "server")
	require.NoError(t, err, "every key-file Store still reads the record")
	assert.True(t, got.Equal(sampleAuth()), "the session reads back")
}
