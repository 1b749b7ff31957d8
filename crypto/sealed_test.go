package crypto_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/testplugin"
)

// noSecret checks that an error message quotes no key material.
func noSecret(t *testing.T, err error, p *testplugin.Plugin) {
	t.Helper()
	require.Error(t, err)
	stub, rerr := os.ReadFile(p.IdentityFile)
	require.NoError(t, rerr)
	assert.NotContains(t, err.Error(), "AGE-SECRET-KEY", "an error quotes a secret key")
	assert.NotContains(t, err.Error(), "AGE-PLUGIN-", "an error quotes the identity")
	assert.NotContains(t, string(stub), err.Error())
}

// A key file sealed to a plugin recipient: made with one plugin run, opened
// with one more, then from the process's cache; rewritten sealed to the
// recipients in .sealed-to.
func TestSealedKeyFile(t *testing.T) {
	p := testplugin.Setup(t)
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "key")
	require.NoError(t, crypto.CreateSealedKeyFile(path, k, []string{p.Recipient}, nil))

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, crypto.IsEncryptedKeyFile(data))
	assert.True(t, crypto.IsSealedKeyFile(data))
	assert.NotContains(t, string(data), "AGE-SECRET-KEY", "no key material in the clear")
	sealedTo, err := os.ReadFile(path + crypto.SealedToSuffix)
	require.NoError(t, err)
	assert.Equal(t, p.Recipient+"\n", string(sealedTo))
	unwrap, wrap := p.Calls(t)
	assert.Equal(t, [2]int{0, 1}, [2]int{unwrap, wrap}, "plugin runs (unwrap, wrap) to create")

	_, err = crypto.LoadKeyringWithIdentity(path, nil, crypto.KeyIdentity{})
	assert.ErrorIs(t, err, crypto.ErrIdentityRequired)

	id := crypto.KeyIdentity{File: p.IdentityFile}
	for range 3 {
		ring, err := crypto.LoadKeyringWithIdentity(path, nil, id)
		require.NoError(t, err)
		assert.Equal(t, k.PublicKey(0), ring.PublicKey(0))
	}
	unwrap, _ = p.Calls(t)
	assert.Equal(t, 1, unwrap, "plugin runs to open the key file three times in one process")

	// A rewrite seals to .sealed-to again.
	next, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	require.NoError(t, crypto.ReplaceKeyFile(path, next))
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, crypto.IsSealedKeyFile(data), "the rewritten key file is sealed")
	ring, err := crypto.LoadKeyringWithIdentity(path, nil, id)
	require.NoError(t, err)
	assert.Equal(t, next.PublicKey(0), ring.PublicKey(0))
	unwrap, wrap = p.Calls(t)
	assert.Equal(t, [2]int{2, 2}, [2]int{unwrap, wrap}, "plugin runs (unwrap, wrap) after one rewrite")

	assert.Error(t, crypto.ReplaceKeyFileWithPassphrase(path, next, "pw"), "a sealed key file takes no passphrase")

	// A passphrase-protected key file is not sealed.
	lowWorkFactor(t)
	pp := filepath.Join(t.TempDir(), "key")
	require.NoError(t, crypto.CreateKeyFileWithPassphrase(pp, k, "pw"))
	data, err = os.ReadFile(pp)
	require.NoError(t, err)
	assert.False(t, crypto.IsSealedKeyFile(data))
}

// A missing plugin, and one that refuses: an error naming the plugin and
// saying what to do, nothing written, no secret quoted.
func TestSealedKeyFilePluginErrors(t *testing.T) {
	p := testplugin.Setup(t)
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	id := crypto.KeyIdentity{File: p.IdentityFile}

	t.Setenv(testplugin.RefuseEnv, "no token present")
	err = crypto.CreateSealedKeyFile(path, k, []string{p.Recipient}, nil)
	assert.ErrorIs(t, err, crypto.ErrPlugin)
	assert.ErrorContains(t, err, "age-plugin-sstest failed or refused")
	assert.ErrorContains(t, err, "no token present")
	noSecret(t, err, p)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing written")

	t.Setenv(testplugin.RefuseEnv, "")
	require.NoError(t, crypto.CreateSealedKeyFile(path, k, []string{p.Recipient}, nil))

	t.Setenv(testplugin.RefuseEnv, "touch not confirmed")
	_, err = crypto.LoadKeyringWithIdentity(path, nil, id)
	assert.ErrorIs(t, err, crypto.ErrPlugin)
	assert.ErrorContains(t, err, "age-plugin-sstest failed or refused to open the key file")
	assert.ErrorContains(t, err, "touch not confirmed")
	noSecret(t, err, p)
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	next, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	err = crypto.ReplaceKeyFile(path, next)
	assert.ErrorIs(t, err, crypto.ErrPlugin, "a refused rewrite")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the key file is unchanged")

	t.Setenv(testplugin.RefuseEnv, "")
	t.Setenv("PATH", t.TempDir())
	_, err = crypto.LoadKeyringWithIdentity(path, nil, id)
	assert.ErrorIs(t, err, crypto.ErrPlugin)
	assert.ErrorContains(t, err, "age-plugin-sstest not found on $PATH: install it")
	noSecret(t, err, p)
	err = crypto.ReplaceKeyFile(path, next)
	assert.ErrorContains(t, err, "age-plugin-sstest not found on $PATH: install it")
	after, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the key file is unchanged")

	// An identity that is not the key file's.
	other := filepath.Join(t.TempDir(), "other")
	require.NoError(t, os.WriteFile(other, []byte("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n"), 0o600))
	_, err = crypto.LoadKeyringWithIdentity(path, nil, crypto.KeyIdentity{File: other})
	assert.ErrorContains(t, err, "no identity in")
	noSecret(t, err, p)
}

func TestMain(m *testing.M) {
	code := m.Run()
	testplugin.Cleanup()
	os.Exit(code)
}
