package filestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/testplugin"
)

func init() {
	cleanups = append(cleanups, testplugin.Cleanup)
	// sealed: open two more Stores on the key file (sealed to the test
	// plugin, opened with $SESSIONSTORE_KEY_IDENTITY), then with mode
	// "set" store the value n under name through the first and read it
	// through the others; with mode "get" print what each reads.
	children["sealed"] = func(ctx context.Context, s *filestore.Store, c childSpec) error {
		stores := []*filestore.Store{s}
		for range 2 {
			o, err := filestore.Open(c.dir, filestore.WithKeyFile(c.key))
			if err != nil {
				return err
			}
			defer o.Close()
			stores = append(stores, o)
		}
		if c.mode == "set" {
			if err := s.Set(ctx, c.name, sessionstore.AuthObject{AccessToken: strconv.Itoa(c.n)}); err != nil {
				return err
			}
		}
		for _, o := range stores {
			a, err := o.Get(ctx, c.name)
			if err != nil {
				return err
			}
			fmt.Println("got", a.AccessToken)
		}
		return nil
	}
}

// A key file sealed to an age plugin: each process runs the plugin once,
// however many Stores it opens; a rotation keeps the key file sealed to
// the same recipients, and a Store follows it with one more plugin run,
// not one per record.
func TestSealedKeyFileAcrossProcesses(t *testing.T) {
	p := testplugin.Setup(t)
	t.Setenv(crypto.KeyIdentityEnv, p.IdentityFile)
	ctx := ctxT(t)
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	key := filepath.Join(t.TempDir(), "sessionstore.key")
	require.NoError(t, crypto.CreateSealedKeyFile(key, k, []string{p.Recipient}, nil))
	sealedTo, err := os.ReadFile(key + crypto.SealedToSuffix)
	require.NoError(t, err)
	dir := t.TempDir()
	unwrapped := func() int { u, _ := p.Calls(t); return u }

	for i, mode := range []string{"set", "get"} {
		cmd, out := startChild(t, ctx, childSpec{role: "sealed", dir: dir, key: key, name: "server", mode: mode, n: 42})
		for range 3 {
			f := expectLine(t, out, "got")
			assert.Equal(t, []string{"got", "42"}, f, "child %s", mode)
		}
		require.NoError(t, cmd.Wait())
		assert.Equal(t, i+1, unwrapped(), "plugin runs to open the key file after %d process(es) of 3 Stores each", i+1)
	}

	// This process: its Stores, Rotate and the reload after it.
	s := openStore(t, dir, key)
	openStore(t, dir, key)
	assert.Equal(t, 3, unwrapped(), "this process's two Stores run the plugin once")
	const n = 20
	for i := range n {
		require.NoError(t, s.Set(ctx, "rec-"+strconv.Itoa(i), sampleAuth()))
	}
	rep, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
	require.NoError(t, err)
	data, err := os.ReadFile(key)
	require.NoError(t, err)
	assert.True(t, crypto.IsSealedKeyFile(data), "the rotated key file is sealed")
	after, err := os.ReadFile(key + crypto.SealedToSuffix)
	require.NoError(t, err)
	assert.Equal(t, sealedTo, after, ".sealed-to is unchanged")
	afterRotate := unwrapped()
	_, wraps := p.Calls(t)
	t.Logf("plugin runs: %d unwrap (2 child processes, this one, then Rotate), %d wrap (create, 2 rewrites)", afterRotate, wraps)
	assert.Equal(t, 3, wraps, "create, then Rotate's two rewrites, one recipient")
	assert.Equal(t, 4, afterRotate, "Rotate runs the plugin once, for its Stores on the new key file (it loads the old one from this process's cache)")
	for i := range n {
		name := "rec-" + strconv.Itoa(i)
		require.NoError(t, s.Set(ctx, name, sampleAuth()))
		got, err := s.Get(ctx, name)
		require.NoError(t, err)
		assert.True(t, got.Equal(sampleAuth()), "the session reads back")
	}
	assert.Equal(t, rep.NewPublicKey, s.Keyring().PublicKey(0), "the Store follows the rotation")
	assert.Equal(t, afterRotate+1, unwrapped(), "the reload after the rotation runs the plugin once, not per record")
}

// A refusing or missing plugin: Open fails naming it, and creates nothing.
func TestSealedKeyFileOpenErrors(t *testing.T) {
	p := testplugin.Setup(t)
	t.Setenv(crypto.KeyIdentityEnv, "")
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	key := filepath.Join(t.TempDir(), "sessionstore.key")
	require.NoError(t, crypto.CreateSealedKeyFile(key, k, []string{p.Recipient}, nil))
	dir := filepath.Join(t.TempDir(), "s")

	_, err = filestore.Open(dir, filestore.WithKeyFile(key), filestore.WithKeyIdentity(""))
	assert.ErrorIs(t, err, crypto.ErrIdentityRequired)
	assert.ErrorContains(t, err, "WithKeyIdentity")

	t.Setenv(testplugin.RefuseEnv, "no token present")
	_, err = filestore.Open(dir, filestore.WithKeyFile(key), filestore.WithKeyIdentity(p.IdentityFile))
	assert.ErrorIs(t, err, crypto.ErrPlugin)
	assert.ErrorContains(t, err, `age-plugin-sstest failed or refused to open the key file: "no token present"`)
	assert.NoDirExists(t, dir)

	t.Setenv(testplugin.RefuseEnv, "")
	t.Setenv("PATH", t.TempDir())
	_, err = filestore.Open(dir, filestore.WithKeyFile(key), filestore.WithKeyIdentity(p.IdentityFile))
	assert.ErrorIs(t, err, crypto.ErrPlugin)
	assert.ErrorContains(t, err, "age-plugin-sstest not found on $PATH: install it")
	assert.NoDirExists(t, dir)
}
