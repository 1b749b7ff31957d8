package etcdstore_test

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

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

var goldenWrite = flag.Bool("golden-write", false, "write missing golden files (never overwrites one)")

var golden = filepath.Join("..", "testdata", "golden")

// goldenPrefix is the prefix the golden etcd records are sealed for.
const goldenPrefix = "/sessionstore/golden"

// A vector is one line of testdata/golden/vectors.json (see filestore's
// golden test); this test opens those with a namespace, through etcd.
type vector struct {
	File      string `json:"file"`
	Key       string `json:"key"`
	AuthType  string `json:"auth_type"`
	Namespace string `json:"namespace"`
	Version   int    `json:"version"`
	Value     string `json:"value"`
	Error     string `json:"error"`
	Why       string `json:"why"`
}

// TestGoldenRecordsStillOpen puts every golden record with a namespace
// under that prefix in etcd and opens it with an etcdstore Store, forever:
// every record format version etcdstore ever wrote, and the copies that
// must not open.
func TestGoldenRecordsStillOpen(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	if *goldenWrite {
		writeGoldens(t, e)
	}
	data, err := os.ReadFile(filepath.Join(golden, "vectors.json"))
	require.NoError(t, err)
	var vectors []vector
	require.NoError(t, json.Unmarshal(data, &vectors))
	versions := map[int]bool{}
	for _, v := range vectors {
		if v.Namespace == "" {
			continue // a file record: filestore's golden test
		}
		t.Run(v.File+"/"+v.Key+"/"+v.Namespace+"/"+v.AuthType, func(t *testing.T) {
			record, err := os.ReadFile(filepath.Join(golden, v.File))
			require.NoError(t, err)
			stem, err := etcdstore.StemOf(v.AuthType)
			require.NoError(t, err)
			put(t, c, v.Namespace+"/records/"+stem, record)
			key := testKeyFile(t, v.Key)
			got, err := openOn(t, c, v.Namespace, etcdstore.WithKeyFile(key)).Get(ctx, v.AuthType)
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
				rec, _, err := envelope.Open(ring, record, v.Namespace, v.AuthType)
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
	for v := 2; v <= envelope.FormatVersion; v++ {
		assert.True(t, versions[v], "format version %d has a golden record", v)
	}
}

// writeGoldens writes the missing golden etcd records of the current
// format version.
func writeGoldens(t *testing.T, e env) {
	value := func(name string) sessionstore.AuthObject {
		var a sessionstore.AuthObject
		data, err := os.ReadFile(filepath.Join(golden, name))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(data, &a))
		return a
	}
	c := e.client(t)
	write := func(name, keyName, valueFile string) {
		want := value(valueFile)
		path := filepath.Join(golden, name)
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			return // never overwrite a golden file
		}
		s := openOn(t, c, goldenPrefix, etcdstore.WithKeyFile(testKeyFile(t, keyName)))
		require.NoError(t, s.Delete(ctxT(t), "server"))
		require.NoError(t, s.Set(ctxT(t), "server", want))
		require.NoError(t, os.WriteFile(path, raw(t, c, goldenPrefix+"/records/server"), 0o644))
		t.Logf("wrote %s", path)
	}
	write("v2-x25519.age", "test-x25519.key", "v1.json")
	write("v2-pq.age", "test-pq.key", "v1.json")
	// Health: a marked session is version 3; a last refresh alone stays
	// version 2.
	write("v2-x25519-last-refresh.age", "test-x25519.key", "last-refresh.json")
	write("v3-x25519-etcd.age", "test-x25519.key", "v3.json")
	write("v3-pq-etcd.age", "test-pq.key", "v3.json")
}
