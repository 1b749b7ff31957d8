//go:build !windows

package crypto_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
)

// The recipients file decides who can read every new record: it is
// trusted exactly like the key file, else ErrInsecurePermissions.
func TestRecipientsFileIsTrustedOnlyLikeTheKeyFile(t *testing.T) {
	mk := func(t *testing.T) (path, recips string) {
		dir := t.TempDir()
		path = filepath.Join(dir, "k.key")
		k, err := crypto.GenerateKeyring(false)
		require.NoError(t, err)
		require.NoError(t, crypto.CreateKeyFile(path, k))
		attacker, err := crypto.GenerateKeyring(false)
		require.NoError(t, err)
		return path, attacker.PublicKey(0) + "\n"
	}
	t.Run("ok: 0600 and 0644", func(t *testing.T) {
		path, recips := mk(t)
		for _, mode := range []os.FileMode{0o600, 0o644} {
			require.NoError(t, os.WriteFile(path+crypto.RecipientsSuffix, []byte(recips), mode))
			require.NoError(t, os.Chmod(path+crypto.RecipientsSuffix, mode))
			k, err := crypto.LoadKeyring(path)
			require.NoError(t, err, "mode %04o", mode)
			assert.Len(t, k.Recipients(), 2)
		}
	})
	for name, plant := range map[string]func(t *testing.T, file, recips string){
		"group writable": func(t *testing.T, file, recips string) {
			require.NoError(t, os.WriteFile(file, []byte(recips), 0o600))
			require.NoError(t, os.Chmod(file, 0o620))
		},
		"world writable": func(t *testing.T, file, recips string) {
			require.NoError(t, os.WriteFile(file, []byte(recips), 0o600))
			require.NoError(t, os.Chmod(file, 0o666))
		},
		"symlink": func(t *testing.T, file, recips string) {
			target := filepath.Join(t.TempDir(), "theirs")
			require.NoError(t, os.WriteFile(target, []byte(recips), 0o600))
			require.NoError(t, os.Symlink(target, file))
		},
		"directory": func(t *testing.T, file, recips string) {
			require.NoError(t, os.Mkdir(file, 0o700))
		},
		"owned by another user": func(t *testing.T, file, recips string) {
			require.NoError(t, os.WriteFile(file, []byte(recips), 0o600))
			if os.Geteuid() != 0 {
				t.Skip("chown to another user needs root")
			}
			require.NoError(t, os.Chown(file, 65534, 65534))
		},
	} {
		t.Run(name, func(t *testing.T) {
			path, recips := mk(t)
			plant(t, path+crypto.RecipientsSuffix, recips)
			_, err := crypto.LoadKeyring(path)
			assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
			assert.ErrorContains(t, err, path+crypto.RecipientsSuffix, "names the file")
		})
	}
}

// A FIFO in place of the key file or the recipients file is an error at
// once, never a hang.
func TestKeyFilesFIFONeverBlocks(t *testing.T) {
	for _, which := range []string{"", crypto.RecipientsSuffix} {
		dir := t.TempDir()
		path := filepath.Join(dir, "k.key")
		if which != "" {
			k, err := crypto.GenerateKeyring(false)
			require.NoError(t, err)
			require.NoError(t, crypto.CreateKeyFile(path, k))
		}
		require.NoError(t, syscall.Mkfifo(path+which, 0o600))
		done := make(chan error, 1)
		go func() { _, err := crypto.LoadKeyring(path); done <- err }()
		select {
		case err := <-done:
			assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions, "FIFO at %q", path+which)
		case <-time.After(10 * time.Second):
			t.Fatalf("LoadKeyring blocked on a FIFO at %s", path+which)
		}
	}
}

// A key file sealed to age recipients: a FIFO given as the identity file,
// or in place of the .sealed-to file, is an error at once, never a hang;
// a .sealed-to file others may change is refused like a recipients file.
func TestSealedKeyFilesFIFONeverBlocks(t *testing.T) {
	mk := func(t *testing.T) (path string, id crypto.KeyIdentity) {
		dir := t.TempDir()
		opener, err := crypto.GenerateKeyring(false)
		require.NoError(t, err)
		id.File = filepath.Join(dir, "identity")
		require.NoError(t, os.WriteFile(id.File, opener.MarshalKeyFile(time.Now()), 0o600))
		k, err := crypto.GenerateKeyring(false)
		require.NoError(t, err)
		path = filepath.Join(dir, "k.key")
		require.NoError(t, crypto.CreateSealedKeyFile(path, k, []string{opener.PublicKey(0)}, nil))
		_, err = crypto.LoadKeyringWithIdentity(path, nil, id)
		require.NoError(t, err, "opens with its identity file")
		return path, id
	}
	within := func(t *testing.T, what string, f func() error) error {
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("%s blocked on a FIFO", what)
			return nil
		}
	}

	path, id := mk(t)
	require.NoError(t, os.Remove(id.File))
	require.NoError(t, syscall.Mkfifo(id.File, 0o600))
	err := within(t, "opening with a FIFO identity file", func() error {
		_, err := crypto.LoadKeyringWithIdentity(path, nil, id)
		return err
	})
	assert.ErrorContains(t, err, id.File+" is not a regular file")
	link := id.File + ".link"
	require.NoError(t, os.Symlink(id.File, link))
	err = within(t, "opening with a symlink to a FIFO", func() error {
		_, err := crypto.LoadKeyringWithIdentity(path, nil, crypto.KeyIdentity{File: link})
		return err
	})
	assert.ErrorContains(t, err, link+" is not a regular file")

	path, id = mk(t)
	link = id.File + ".link"
	require.NoError(t, os.Symlink(id.File, link))
	_, err = crypto.LoadKeyringWithIdentity(path, nil, crypto.KeyIdentity{File: link})
	require.NoError(t, err, "the identity file may be a symlink")

	path, _ = mk(t)
	require.NoError(t, os.Remove(path+crypto.SealedToSuffix))
	require.NoError(t, syscall.Mkfifo(path+crypto.SealedToSuffix, 0o600))
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	err = within(t, "rewriting with a FIFO .sealed-to", func() error { return crypto.ReplaceKeyFile(path, k) })
	assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)

	path, _ = mk(t)
	require.NoError(t, os.Chmod(path+crypto.SealedToSuffix, 0o666))
	err = crypto.ReplaceKeyFile(path, k)
	assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
	assert.ErrorContains(t, err, path+crypto.SealedToSuffix, "names the file")

	path, _ = mk(t)
	moved := path + ".elsewhere"
	require.NoError(t, os.Rename(path+crypto.SealedToSuffix, moved))
	require.NoError(t, os.Symlink(moved, path+crypto.SealedToSuffix))
	assert.ErrorIs(t, crypto.ReplaceKeyFile(path, k), sessionstore.ErrInsecurePermissions, "a symlinked .sealed-to is not followed")
}
