package filestore_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
)

// A passphrase-protected key file is decrypted with a passphrase asked
// once per Open; the Store follows a rotation without asking again, and
// the rotated key file keeps the passphrase.
func TestPassphraseProtectedKeyFile(t *testing.T) {
	old := crypto.KeyFileWorkFactor
	crypto.KeyFileWorkFactor = 10
	t.Cleanup(func() { crypto.KeyFileWorkFactor = old })
	ctx := ctxT(t)
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	key := filepath.Join(t.TempDir(), "key")
	require.NoError(t, crypto.CreateKeyFileWithPassphrase(key, k, "s3cret pass"))
	dir := t.TempDir()

	_, err = filestore.Open(dir, filestore.WithKeyFile(key))
	assert.ErrorIs(t, err, crypto.ErrPassphraseRequired)
	assert.ErrorContains(t, err, "WithPassphrase")

	asked := 0
	pass := filestore.WithPassphrase(func() (string, error) { asked++; return "s3cret pass", nil })
	s := openStore(t, dir, key, pass)
	assert.Equal(t, 1, asked)
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	warm(t, s, "server", true)

	_, err = filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
	assert.ErrorIs(t, err, crypto.ErrPassphraseRequired, "rotation needs the passphrase too")
	_, err = filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{
		Passphrase: func() (string, error) { return "s3cret pass", nil }})
	require.NoError(t, err)

	ring, err := crypto.LoadKeyringWithPassphrase(key, func() (string, error) { return "s3cret pass", nil })
	require.NoError(t, err, "the rotated key file has the same passphrase")
	require.NotEqual(t, k.PublicKey(0), ring.PublicKey(0))
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	assert.Equal(t, ring.PublicKey(0), s.Keyring().PublicKey(0), "the Store followed the rotation")
	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, got.Equal(sampleAuth()), "the session reads back")
	assert.Equal(t, 1, asked, "asked once per Open")
}

// Loading a changed passphrase-protected key file (asking for the
// passphrase, then scrypt) never happens while a record lock is held: a
// writer reloads before it locks, so other writers are never kept waiting
// on it. Here the passphrase prompt does not answer until another Store
// has written the same record.
func TestNoKeyDerivationUnderRecordLock(t *testing.T) {
	old := crypto.KeyFileWorkFactor
	crypto.KeyFileWorkFactor = 10
	t.Cleanup(func() { crypto.KeyFileWorkFactor = old })
	ctx := ctxT(t)
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	key := filepath.Join(t.TempDir(), "key")
	require.NoError(t, crypto.CreateKeyFile(key, k)) // no passphrase yet: none is asked at Open
	dir := t.TempDir()
	asking, answer := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(answer) }) }
	s := openStore(t, dir, key, filestore.WithoutWatcher(), filestore.WithPassphrase(func() (string, error) {
		close(asking)
		<-answer
		return "pw", nil
	}))
	t.Cleanup(release) // before s closes
	other, err := filestore.Open(dir, filestore.WithKeyring(k))
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	require.NoError(t, s.Set(ctx, "server", tokenAuth(1)))

	// The same keys, now behind a passphrase: s's next write loads the key
	// file again, and asks.
	require.NoError(t, crypto.ReplaceKeyFileWithPassphrase(key, k, "pw"))
	done := make(chan error, 1)
	go func() { done <- s.Set(ctx, "server", tokenAuth(2)) }()
	select {
	case <-asking:
	case err := <-done:
		t.Fatalf("the Set asked for no passphrase (err %v)", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, other.Set(wctx, "server", tokenAuth(3)), "a writer waited on another's passphrase prompt")
	release()
	require.NoError(t, <-done)
	got, err := other.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, got.Equal(tokenAuth(2)), "the Set that waited for its passphrase wrote last")
}

// A writer that keeps writing while its passphrase-protected key file is
// rotated follows every rotation, and no write fails.
func TestWriterFollowsPassphraseRotations(t *testing.T) {
	old := crypto.KeyFileWorkFactor
	crypto.KeyFileWorkFactor = 12
	t.Cleanup(func() { crypto.KeyFileWorkFactor = old })
	ctx := ctxT(t)
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	key := filepath.Join(t.TempDir(), "key")
	require.NoError(t, crypto.CreateKeyFileWithPassphrase(key, k, "pw"))
	dir := t.TempDir()
	pass := func() (string, error) { return "pw", nil }
	s := openStore(t, dir, key, filestore.WithPassphrase(pass))
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))

	stop := make(chan struct{})
	errs := make(chan error, 1)
	writes := 0
	go func() {
		defer close(errs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := s.Update(wctx, "server", increment)
			cancel()
			if err != nil {
				errs <- err
				return
			}
			writes++
		}
	}()
	for range 3 {
		_, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{Passphrase: pass})
		require.NoError(t, err)
	}
	close(stop)
	for err := range errs {
		assert.NoError(t, err, "a writer failed during the rotations")
	}
	assert.Positive(t, writes)
	ring, err := crypto.LoadKeyringWithPassphrase(key, pass)
	require.NoError(t, err)
	assert.Equal(t, ring.PublicKey(0), s.Keyring().PublicKey(0), "the writer followed the rotations")
}
