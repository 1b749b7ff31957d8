package etcdstore_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
)

// A writer that finds the key file changed loads it (scrypt, for a
// passphrase-protected one) with no record lock held, so that no other
// writer of the fleet waits on a key derivation; it still seals to the new
// primary.
func TestNoKeyDerivationUnderRecordLock(t *testing.T) {
	old := crypto.KeyFileWorkFactor
	crypto.KeyFileWorkFactor = 12
	t.Cleanup(func() { crypto.KeyFileWorkFactor = old })
	ctx := ctxT(t)
	e := newEnv(t)
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	key := filepath.Join(t.TempDir(), "k.key")
	require.NoError(t, crypto.CreateKeyFileWithPassphrase(key, k, "pw"))
	pass := etcdstore.WithPassphrase(func() (string, error) { return "pw", nil })
	s := openOn(t, e.client(t), e.prefix, etcdstore.WithKeyFile(key), pass)
	require.NoError(t, s.Set(ctx, "server", token2K()))

	for range 3 {
		id, err := crypto.GenerateIdentity(false)
		require.NoError(t, err)
		cur, err := crypto.LoadKeyringWithPassphrase(key, func() (string, error) { return "pw", nil })
		require.NoError(t, err)
		next, err := cur.Rotate(id)
		require.NoError(t, err)
		require.NoError(t, crypto.ReplaceKeyFileWithPassphrase(key, next, "pw"))
		require.NoError(t, s.Set(ctx, "server", token2K()))
		assert.Equal(t, next.PublicKey(0), s.Keyring().PublicKey(0), "the write followed the new key file")
	}
}
