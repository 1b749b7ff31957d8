package filestore_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

// TestSetTrustsTheWritersNoteNotTheRecord: writers that alternate on one
// name (each its own Store, as processes are) do not decrypt each other's
// records: the lock file's note vouches for them, so a Set that replaces
// another writer's record allocates no more than one that replaces its
// own, where a decryption would add about 150 allocations. A note that
// does not describe the record (the record replaced without one) is not
// used: a record sealed to a foreign key put in its place still makes Set
// fail with sessionstore.ErrWrongKey, and it is left as it was.
func TestSetTrustsTheWritersNoteNotTheRecord(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no writers' note on windows")
	}
	dir, key := t.TempDir(), newKeyFile(t, false)
	// No watchers: a watching Store loads another writer's record in the
	// background, which would count here.
	a := openStore(t, dir, key, filestore.WithoutWatcher())
	b := openStore(t, dir, key, filestore.WithoutWatcher())
	ctx := ctxT(t)
	seed := uint64(0)
	set := func(s *filestore.Store) {
		seed++
		if err := s.Set(ctx, "server", tokenAuth(seed)); err != nil {
			t.Fatal(err)
		}
	}
	own := testing.AllocsPerRun(10, func() { set(a); set(a) })
	alternating := testing.AllocsPerRun(10, func() { set(b); set(a) })
	decrypt := decryptMallocs(t, dir, key, "server")
	t.Logf("allocations per pair of Sets: %.0f by one writer, %.0f alternating; a decrypting Get: %d", own, alternating, decrypt)
	assert.Less(t, alternating, own+float64(decrypt)/2, "writers that alternate decrypt each other's records")
	got, err := b.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, got.Equal(tokenAuth(seed)), "the last Set stands")

	// a wrote last: the note describes a's record, sealed to the key b
	// holds. Put a record sealed to another key in its place, leaving the
	// note as it was.
	foreign, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := sealFor(foreign, "server")
	require.NoError(t, err)
	path := filepath.Join(dir, "server.age")
	require.NoError(t, os.WriteFile(path, ct, 0o600))
	require.ErrorIs(t, b.Set(ctx, "server", tokenAuth(seed+1)), sessionstore.ErrWrongKey,
		"a note that describes another record does not vouch for this one")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(ct, after), "the foreign record is unchanged")
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
// writer decrypts the record and goes on from its real sequence number,
// and the sequence space is intact for every writer after it.
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
	// One short of the last: believed, it would make b write the last
	// sequence number there is.
	const forged = math.MaxUint64 - 1
	binary.BigEndian.PutUint64(n[seqAt:], forged)
	require.NoError(t, os.WriteFile(lock, n, 0o600))

	require.NoError(t, b.Set(ctx, "server", tokenAuth(2)))
	data, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	ring, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	rec, _, err := envelope.Open(ring, data, "", "server")
	require.NoError(t, err)
	assert.Less(t, rec.Seq, uint64(time.Now().Add(time.Hour).UnixNano()), "b went on from the record's own sequence number, not the note's")
	require.NoError(t, a.Set(ctx, "server", tokenAuth(3)), "the sequence space is intact")
	got, err := b.Get(ctx, "server")
	require.NoError(t, err, "the record a wrote after b is no rollback to b")
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
