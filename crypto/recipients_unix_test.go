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
