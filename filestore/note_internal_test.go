package filestore

import (
	"crypto/sha256"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

var noteGoldenWrite = flag.Bool("note.golden.write", false, "write testdata/golden/v1-x25519.lock if it is missing")

// TestNoteGolden: the note format 1 (testdata/golden/v1-x25519.lock, the
// note a writer of testdata/golden/v1-x25519.age leaves, under the
// test-only key test-x25519.key) still parses, to the same note, and
// vouches for that record; and a note is still written byte for byte so.
func TestNoteGolden(t *testing.T) {
	golden := filepath.Join("..", "testdata", "golden")
	record, err := os.ReadFile(filepath.Join(golden, "v1-x25519.age"))
	require.NoError(t, err)
	ring, err := crypto.LoadKeyring(testKey(t, filepath.Join("..", "testdata", "keys", "test-x25519.key")))
	require.NoError(t, err)
	rec, _, err := envelope.Open(ring, record, "", "server")
	require.NoError(t, err)
	want := &note{digest: sha256.Sum256(record), seq: rec.Seq, fp: ring.Fingerprint(0)}
	path := filepath.Join(golden, "v1-x25519.lock")
	if _, err := os.Stat(path); *noteGoldenWrite && os.IsNotExist(err) {
		require.NoError(t, os.WriteFile(path, want.marshal(), 0o644))
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	got := parseNote(data)
	require.NotNil(t, got, "the golden note parses")
	assert.Equal(t, want, got)
	assert.Equal(t, data, want.marshal(), "notes are written in the same format")
	assert.True(t, got.vouchesFor(sha256.Sum256(record), ring, time.Now()))
	assert.Nil(t, parseNote(data[:len(data)-1]), "a truncated note is no note")
	assert.Nil(t, parseNote(nil), "an empty lock file holds no note")
}

// testKey copies a test-only key with mode 0600 (git keeps no modes).
func testKey(t *testing.T, src string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	require.NoError(t, os.WriteFile(dst, data, 0o600))
	return dst
}
