package filestore_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
)

// TestSetTrustsTheWritersNoteNotTheRecord: writers that alternate on one
// name (each its own Store, as processes are) do not decrypt each other's
// records: the lock file's note vouches for them. A note that does not
// match the record (the record replaced without one) is not used.
func TestSetTrustsTheWritersNoteNotTheRecord(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no writers' note on windows")
	}
	dir, key := t.TempDir(), newKeyFile(t, false)
	a, b := openStore(t, dir, key), openStore(t, dir, key)
	ctx := ctxT(t)
	for i := range 5 {
		require.NoError(t, a.Set(ctx, "server", tokenAuth(uint64(2*i))))
		require.NoError(t, b.Set(ctx, "server", tokenAuth(uint64(2*i+1))))
	}
	assert.Zero(t, a.Opens(), "a decrypted b's records")
	assert.Zero(t, b.Opens(), "b decrypted a's records")
	got, err := a.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, got.Equal(tokenAuth(9)), "the last Set stands")

	// Put back an older record of a's, as a rollback would, with the note
	// left as it was: b no longer finds the record the note describes
	// (nor its own last write), and decrypts it.
	path := filepath.Join(dir, "server.age")
	require.NoError(t, a.Set(ctx, "server", tokenAuth(10)))
	old, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, b.Set(ctx, "server", tokenAuth(11)))
	require.NoError(t, a.Set(ctx, "server", tokenAuth(12)))
	require.NoError(t, os.WriteFile(path, old, 0o600))
	opens := b.Opens()
	require.NoError(t, b.Set(ctx, "server", tokenAuth(13)))
	assert.Equal(t, opens+1, b.Opens(), "a record the note does not describe is decrypted")
}

// TestNoteDoesNotHideAForeignKey: a record written by a Store with
// another key carries a note naming that key; a Store without it decrypts
// the record and refuses to replace it (sessionstore.ErrWrongKey).
func TestNoteDoesNotHideAForeignKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	k2, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ctx := ctxT(t)
	s1, err := filestore.Open(dir, filestore.WithKeyring(k1))
	require.NoError(t, err)
	t.Cleanup(func() { s1.Close() })
	s2, err := filestore.Open(dir, filestore.WithKeyring(k2))
	require.NoError(t, err)
	t.Cleanup(func() { s2.Close() })

	require.NoError(t, s2.Set(ctx, "server", tokenAuth(1)))
	path := filepath.Join(dir, "server.age")
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	err = s1.Set(ctx, "server", tokenAuth(2))
	require.ErrorIs(t, err, sessionstore.ErrWrongKey)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the foreign record is unchanged")
}

// TestForgedNoteSequenceIsIgnored: a note whose sequence number is far in
// the future (forged, to exhaust the sequence space) is not believed: the
// writer decrypts the record and goes on from its real sequence number.
func TestForgedNoteSequenceIsIgnored(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no writers' note on windows")
	}
	dir, key := t.TempDir(), newKeyFile(t, false)
	a, b := openStore(t, dir, key), openStore(t, dir, key)
	ctx := ctxT(t)
	require.NoError(t, a.Set(ctx, "server", tokenAuth(1)))
	lock := filepath.Join(dir, "server.lock")
	n, err := os.ReadFile(lock)
	require.NoError(t, err)
	require.Greater(t, len(n), 8+39)
	seqAt := len(n) - 39 - 8 // magic, digest, seq (8), fingerprint (39)
	for i := range 8 {
		n[seqAt+i] = 0xff
	}
	require.NoError(t, os.WriteFile(lock, n, 0o600))

	opens := b.Opens()
	require.NoError(t, b.Set(ctx, "server", tokenAuth(2)))
	assert.Equal(t, opens+1, b.Opens(), "a forged note is not used")
	require.NoError(t, a.Set(ctx, "server", tokenAuth(3)), "the sequence space is intact")
	got, err := b.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, got.Equal(tokenAuth(3)))
}

// TestSetAfterDirectoryReplaced: a Store keeps its directory open for the
// fsync of each write; once the path names another directory (mv dir
// dir.old && mkdir dir), Set writes into the new one, and the old one is
// left alone.
func TestSetAfterDirectoryReplaced(t *testing.T) {
	parent, key := t.TempDir(), newKeyFile(t, false)
	dir := filepath.Join(parent, "store")
	s := openStore(t, dir, key)
	ctx := ctxT(t)
	require.NoError(t, s.Set(ctx, "server", tokenAuth(1)))
	require.NoError(t, os.Rename(dir, dir+".old"))
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, s.Set(ctx, "server", tokenAuth(2)))

	fresh := openStore(t, dir, key)
	got, err := fresh.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, got.Equal(tokenAuth(2)), "the new directory holds the new record")
	old := openStore(t, dir+".old", key)
	got, err = old.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, got.Equal(tokenAuth(1)), "the old directory is unchanged")
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Set(ctx, "server", tokenAuth(3)), sessionstore.ErrClosed)
}
