package sessionstore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessionstore/sessionstore"
)

// FuzzReadPodioJSFile: any file content gives a session with an access
// token, sessionstore.ErrNotFound, or an error that does not quote the file; never a
// panic.
func FuzzReadPodioJSFile(f *testing.F) {
	for _, name := range []string{"password.json", "app.json", "cleared.json", "empty.json", "malformed.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", "podiojs", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"accessToken":"SECRETVALUE","expiresIn":1e400}`))
	f.Add([]byte(`{"accessToken":"SECRETVALUE","ref":{"id":"x"}}`))
	path := filepath.Join(f.TempDir(), "session.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := sessionstore.ReadPodioJSFile(path)
		if err != nil {
			if strings.Contains(err.Error(), "SECRETVALUE") {
				t.Fatalf("error quotes the file: %v", err)
			}
			return
		}
		if a.AccessToken == "" {
			t.Fatal("a session without an access token")
		}
	})
}
