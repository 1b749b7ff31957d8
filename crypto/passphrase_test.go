package crypto_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/crypto"
)

func lowWorkFactor(t *testing.T) {
	t.Helper()
	old := crypto.KeyFileWorkFactor
	crypto.KeyFileWorkFactor = 10 // fast tests; age's default is 18
	t.Cleanup(func() { crypto.KeyFileWorkFactor = old })
}

func TestPassphraseProtectedKeyFile(t *testing.T) {
	lowWorkFactor(t)
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "key")
	require.NoError(t, crypto.CreateKeyFileWithPassphrase(path, k, "correct horse"))

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, crypto.IsEncryptedKeyFile(data))
	assert.NotContains(t, string(data), "AGE-SECRET-KEY", "no key material in the clear")

	// It is what "age -p -a" writes: age decrypts it with the passphrase.
	id, err := age.NewScryptIdentity("correct horse")
	require.NoError(t, err)
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(data)), id)
	require.NoError(t, err)
	plain, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Contains(t, string(plain), "AGE-SECRET-KEY-1")

	_, err = crypto.LoadKeyring(path)
	assert.ErrorIs(t, err, crypto.ErrPassphraseRequired)

	calls := 0
	loaded, err := crypto.LoadKeyringWithPassphrase(path, func() (string, error) { calls++; return "correct horse", nil })
	require.NoError(t, err)
	assert.Equal(t, k.PublicKey(0), loaded.PublicKey(0))
	assert.Equal(t, 1, calls)

	_, err = crypto.LoadKeyringWithPassphrase(path, func() (string, error) { return "wrong", nil })
	assert.ErrorContains(t, err, "wrong passphrase")
	assert.NotContains(t, err.Error(), "wrong\"")
	_, err = crypto.LoadKeyringWithPassphrase(path, func() (string, error) { return "", errors.New("no terminal") })
	assert.ErrorContains(t, err, "no terminal")

	// A plain key file never asks.
	plainPath := filepath.Join(t.TempDir(), "plain")
	require.NoError(t, crypto.CreateKeyFile(plainPath, k))
	_, err = crypto.LoadKeyringWithPassphrase(plainPath, func() (string, error) {
		t.Error("asked for a passphrase of a plain key file")
		return "", nil
	})
	require.NoError(t, err)
	assert.False(t, crypto.IsEncryptedKeyFile([]byte(strings.Repeat("#", 10))))
}
