package filestore_test

import (
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
)

var goldenWrite = flag.Bool("golden-write", false, "write missing golden records for the current format version")

// TestGoldenRecordsStillOpen opens the record of every format version ever
// written, with the test-only keys, and checks its value. Compatibility is
// forever: never edit or delete a golden file.
func TestGoldenRecordsStillOpen(t *testing.T) {
	ctx := ctxT(t)
	golden := filepath.Join("..", "testdata", "golden")
	for _, g := range []struct {
		file, key, value string
	}{
		{"v1-x25519.age", "test-x25519.key", "v1.json"},
		{"v1-pq.age", "test-pq.key", "v1.json"},
	} {
		t.Run(g.file, func(t *testing.T) {
			wantJSON, err := os.ReadFile(filepath.Join(golden, g.value))
			require.NoError(t, err)
			var want filestore.AuthObject
			require.NoError(t, json.Unmarshal(wantJSON, &want))
			key := testKeyFile(t, g.key)
			if *goldenWrite {
				writeGolden(t, filepath.Join(golden, g.file), key, want)
			}
			data, err := os.ReadFile(filepath.Join(golden, g.file))
			require.NoError(t, err)
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "server.age"), data, 0o600))
			s := openStore(t, dir, key)
			got, err := s.Get(ctx, "server")
			require.NoError(t, err)
			assert.Equal(t, want, got)

			ring, err := crypto.LoadKeyring(key)
			require.NoError(t, err)
			rec, _, err := ring.Open(data, "server")
			require.NoError(t, err)
			assert.Equal(t, 1, rec.Version, "this file is format version 1")
		})
	}
}

func writeGolden(t *testing.T, path, key string, want filestore.AuthObject) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return // never overwrite a golden file
	}
	dir := t.TempDir()
	s := openStore(t, dir, key)
	require.NoError(t, s.Set(ctxT(t), "server", want))
	data, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	t.Logf("wrote %s", path)
}
