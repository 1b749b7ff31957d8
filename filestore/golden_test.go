package filestore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/wire"
)

var goldenWrite = flag.Bool("golden-write", false, "write missing golden files (never overwrites one)")

var golden = filepath.Join("..", "testdata", "golden")

// A vector is one line of testdata/golden/vectors.json: a sealed file, the
// test-only key and auth type to open it with, and what must come out.
type vector struct {
	File     string `json:"file"`
	Key      string `json:"key"`
	AuthType string `json:"auth_type"`
	Version  int    `json:"version"`
	Value    string `json:"value"` // the expected sessionstore.AuthObject, as JSON
	// Namespace is the etcd prefix of a record sealed by etcdstore;
	// etcdstore's golden test opens those, this one the others.
	Namespace string `json:"namespace"`
	Error     string `json:"error"` // or the expected error: "tampered", "wrong key"
	Why       string `json:"why"`
}

// TestGoldenRecordsStillOpen opens every golden vector, forever: every
// record format version ever written, with its expected value, and the
// forged, swapped, truncated and bit-flipped variants with their errors.
// Never edit or delete a golden file; add new ones.
func TestGoldenRecordsStillOpen(t *testing.T) {
	ctx := ctxT(t)
	data, err := os.ReadFile(filepath.Join(golden, "vectors.json"))
	require.NoError(t, err)
	var vectors []vector
	require.NoError(t, json.Unmarshal(data, &vectors))
	if *goldenWrite {
		writeGoldens(t)
	}
	versions := map[int]bool{}
	for _, v := range vectors {
		if v.Namespace != "" {
			continue
		}
		t.Run(v.File+"/"+v.Key+"/"+v.AuthType, func(t *testing.T) {
			record, err := os.ReadFile(filepath.Join(golden, v.File))
			require.NoError(t, err)
			key := testKeyFile(t, v.Key)
			stem, err := filestore.StemOf(v.AuthType)
			require.NoError(t, err)
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, stem+".age"), record, 0o600))
			s := openStore(t, dir, key)
			got, err := s.Get(ctx, v.AuthType)
			switch v.Error {
			case "":
				require.NoError(t, err)
				wantJSON, err := os.ReadFile(filepath.Join(golden, v.Value))
				require.NoError(t, err)
				var want sessionstore.AuthObject
				require.NoError(t, json.Unmarshal(wantJSON, &want))
				assert.True(t, want.Equal(got), "want %v, got %v", want, got)
				ring, err := crypto.LoadKeyring(key)
				require.NoError(t, err)
				rec, _, err := envelope.Open(ring, record, "", v.AuthType)
				require.NoError(t, err)
				assert.Equal(t, v.Version, rec.Version)
				versions[rec.Version] = true
			case "tampered":
				assert.ErrorIs(t, err, sessionstore.ErrTampered, v.Why)
			case "wrong key":
				assert.ErrorIs(t, err, sessionstore.ErrWrongKey, v.Why)
			default:
				t.Fatalf("unknown expected error %q", v.Error)
			}
		})
	}
	// Files are sealed in format version 1, or 3 for a session marked as
	// needing a new login (version 2 adds the etcd prefix; etcdstore's
	// golden test checks those).
	assert.True(t, versions[1], "format version 1 has a golden record")
	assert.True(t, versions[3], "format version 3 has a golden file record")
}

// writeGoldens writes the golden files that are missing, for the current
// format version.
func writeGoldens(t *testing.T) {
	t.Helper()
	value := func(name string) sessionstore.AuthObject {
		var a sessionstore.AuthObject
		data, err := os.ReadFile(filepath.Join(golden, name))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(data, &a))
		return a
	}
	want := value("v1.json")
	sealValue := func(keyName, authType string, want sessionstore.AuthObject) []byte {
		dir, key := t.TempDir(), testKeyFile(t, keyName)
		s := openStore(t, dir, key)
		require.NoError(t, s.Set(ctxT(t), authType, want))
		data, err := os.ReadFile(filepath.Join(dir, authType+".age"))
		require.NoError(t, err)
		return data
	}
	seal := func(keyName, authType string) []byte { return sealValue(keyName, authType, want) }
	loadRing := func(name string) *crypto.Keyring {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "keys", name))
		require.NoError(t, err)
		k, err := crypto.ParseKeyring(bytes.NewReader(data))
		require.NoError(t, err)
		return k
	}
	write := func(name string, data func() []byte) {
		path := filepath.Join(golden, name)
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			return // never overwrite a golden file
		}
		require.NoError(t, os.WriteFile(path, data(), 0o644))
		t.Logf("wrote %s", path)
	}
	write("v1-x25519.age", func() []byte { return seal("test-x25519.key", "server") })
	write("v1-pq.age", func() []byte { return seal("test-pq.key", "server") })
	write("v1-x25519-swapped.age", func() []byte { return seal("test-x25519.key", "client") })
	write("v1-x25519-wrongkey.age", func() []byte { return seal("test-other.key", "server") })
	write("v1-x25519-forged.age", func() []byte {
		forger, err := loadRing("test-other.key").WithRecipients(loadRing("test-x25519.key").Recipient())
		require.NoError(t, err)
		auth, err := wire.EncodeAuth(want)
		require.NoError(t, err)
		ct, err := envelope.Seal(forger, &envelope.Record{AuthType: "server", Seq: 1, Written: time.Now(), Auth: auth})
		require.NoError(t, err)
		return ct
	})
	good, err := os.ReadFile(filepath.Join(golden, "v1-x25519.age"))
	require.NoError(t, err)
	write("v1-x25519-truncated.age", func() []byte { return good[:len(good)-20] })
	write("v1-x25519-bitflip.age", func() []byte { return flipByte(good, len(good)-10) })
	// Health: a marked session is version 3; a last refresh alone stays
	// version 1.
	write("v1-x25519-last-refresh.age", func() []byte { return sealValue("test-x25519.key", "server", value("last-refresh.json")) })
	write("v3-x25519.age", func() []byte { return sealValue("test-x25519.key", "server", value("v3.json")) })
	write("v3-pq.age", func() []byte { return sealValue("test-pq.key", "server", value("v3.json")) })
}
