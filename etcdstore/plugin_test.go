package etcdstore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/testplugin"
)

// A key file sealed to an age plugin: Stores open it with one plugin run
// per process; Stage seals it to .sealed-to again, and a writer follows the
// staged key file with one more run, and no run under a record lock.
func TestSealedKeyFile(t *testing.T) {
	p := testplugin.Setup(t)
	ctx := ctxT(t)
	e := newEnv(t)
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	key := filepath.Join(t.TempDir(), "k.key")
	require.NoError(t, crypto.CreateSealedKeyFile(key, k, []string{p.Recipient}, nil))
	id := etcdstore.WithKeyIdentity(p.IdentityFile)
	s := openOn(t, e.client(t), e.prefix, etcdstore.WithKeyFile(key), id)
	openOn(t, e.client(t), e.prefix, etcdstore.WithKeyFile(key), id)
	require.NoError(t, s.Set(ctx, "server", token2K()))
	unwrap, _ := p.Calls(t)
	assert.Equal(t, 1, unwrap, "plugin runs for two Stores")

	rep, err := etcdstore.Stage(ctx, key, etcdstore.StageOptions{Identity: crypto.KeyIdentity{File: p.IdentityFile}})
	require.NoError(t, err)
	data, err := os.ReadFile(key)
	require.NoError(t, err)
	assert.True(t, crypto.IsSealedKeyFile(data), "the staged key file is sealed")
	for range 10 {
		require.NoError(t, s.Set(ctx, "server", token2K()))
	}
	assert.Equal(t, rep.Fingerprint, s.Keyring().Fingerprint(s.Keyring().Len()-1), "the Store follows the staged key file")
	unwrap, wrap := p.Calls(t)
	assert.Equal(t, [2]int{2, 2}, [2]int{unwrap, wrap}, "plugin runs (unwrap, wrap) after Stage and ten writes")
}
