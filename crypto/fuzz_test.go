package crypto_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionstore/sessionstore/crypto"
)

// testKeyring loads a test-only key from testdata.
func testKeyring(f *testing.F, name string) *crypto.Keyring {
	f.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "keys", name))
	if err != nil {
		f.Fatal(err)
	}
	k, err := crypto.ParseKeyring(bytes.NewReader(data))
	if err != nil {
		f.Fatal(err)
	}
	return k
}

// FuzzParseKeyring: any key file parses or fails cleanly, never quoting a
// secret; what parses writes back to a file that parses the same.
func FuzzParseKeyring(f *testing.F) {
	for _, name := range []string{"test-x25519.key", "test-pq.key"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "keys", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("# only a comment\n"))
	f.Add([]byte("AGE-SECRET-KEY-1QQQQ\n"))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := crypto.ParseKeyring(bytes.NewReader(data))
		if err != nil {
			for _, line := range strings.Split(string(data), "\n") {
				if strings.HasPrefix(line, "AGE-SECRET-KEY-") && len(line) > 20 && strings.Contains(err.Error(), line) {
					t.Fatalf("error quotes key material: %v", err)
				}
			}
			return
		}
		again, err := crypto.ParseKeyring(bytes.NewReader(k.MarshalKeyFile(time.Unix(0, 0))))
		if err != nil {
			t.Fatalf("a parsed keyring does not write back: %v", err)
		}
		if again.Len() != k.Len() || again.PublicKey(0) != k.PublicKey(0) {
			t.Fatal("the written key file holds other keys")
		}
	})
}
