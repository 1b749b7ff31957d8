package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/testplugin"
)

// -identity opens a key file sealed to an age plugin's recipient.
func TestIdentityOpensSealedKeyFile(t *testing.T) {
	p := testplugin.Setup(t)
	t.Setenv(crypto.KeyIdentityEnv, "")
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	key, dir := filepath.Join(t.TempDir(), "store.key"), filepath.Join(t.TempDir(), "s")
	require.NoError(t, crypto.CreateSealedKeyFile(key, k, []string{p.Recipient}, nil))
	s, err := filestore.Open(dir, filestore.WithKeyFile(key), filestore.WithKeyIdentity(p.IdentityFile))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "tok", RefreshToken: "ref"}))
	require.NoError(t, s.Close())

	var stdout, stderr bytes.Buffer
	code := run([]string{"ls", "-dir", dir, "-key", key}, nil, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "an identity file is required")

	stdout.Reset()
	stderr.Reset()
	code = run([]string{"ls", "-dir", dir, "-key", key, "-identity", p.IdentityFile}, nil, &stdout, &stderr)
	assert.Equal(t, 0, code, "stderr: %s", stderr.String())
	assert.Regexp(t, `(?m)^server .* primary +ok$`, stdout.String())
	unwrap, wrap := p.Calls(t)
	assert.Equal(t, [2]int{1, 1}, [2]int{unwrap, wrap}, "plugin runs (unwrap, wrap) in this process")
}
