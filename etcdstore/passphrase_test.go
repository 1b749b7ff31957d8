package etcdstore_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
)

// A writer that finds the key file changed loads it (asking for its
// passphrase, then scrypt) with no record lock held: another host writes
// the same record while the prompt is open.
func TestNoKeyDerivationUnderRecordLock(t *testing.T) {
	old := crypto.KeyFileWorkFactor
	crypto.KeyFileWorkFactor = 10
	t.Cleanup(func() { crypto.KeyFileWorkFactor = old })
	ctx := ctxT(t)
	e := newEnv(t)
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	key := filepath.Join(t.TempDir(), "k.key")
	require.NoError(t, crypto.CreateKeyFile(key, k)) // no passphrase yet: none is asked at Open
	asking, answer := make(chan struct{}), make(chan struct{})
	var asked, answered sync.Once
	release := func() { answered.Do(func() { close(answer) }) }
	s := openOn(t, e.client(t), e.prefix, etcdstore.WithKeyFile(key), etcdstore.WithPassphrase(func() (string, error) {
		asked.Do(func() { close(asking) })
		<-answer
		return "pw", nil
	}))
	t.Cleanup(release) // before s closes
	other := openOn(t, e.client(t), e.prefix, etcdstore.WithKeyring(k))
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))

	// The same keys, now behind a passphrase: s's next write loads the key
	// file again, and asks.
	require.NoError(t, crypto.ReplaceKeyFileWithPassphrase(key, k, "pw"))
	done := make(chan error, 1)
	go func() {
		a := sampleAuth()
		a.AccessToken = "waited"
		done <- s.Set(ctx, "server", a)
	}()
	select {
	case <-asking:
	case err := <-done:
		t.Fatalf("the Set asked for no passphrase (err %v)", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the Set never asked for the passphrase")
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b := sampleAuth()
	b.AccessToken = "meanwhile"
	require.NoError(t, other.Set(wctx, "server", b), "a writer waited on another's passphrase prompt")
	release()
	require.NoError(t, <-done)
	got, err := openOn(t, e.client(t), e.prefix, etcdstore.WithKeyring(k)).Get(ctx, "server") // a fresh read
	require.NoError(t, err)
	assert.True(t, got.AccessToken == "waited", "the Set that waited for its passphrase wrote last")
}

// A writer whose passphrase-protected key file is rotated between its
// writes seals each write to the new primary.
func TestWriterFollowsPassphraseRotations(t *testing.T) {
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
