package filestore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sessionstore/sessionstore/filestore"
)

// FuzzNameEscaping: every valid auth type maps to a file stem that round
// trips, stays inside the directory and never looks like a temp or hidden
// file; every invalid one is refused.
func FuzzNameEscaping(f *testing.F) {
	for _, s := range []string{"server", "app:12345", "user@example.com", "../x", ".", "..", "Server", "a/b", `C:\x`, "%2e", "é", "\x00", strings.Repeat("/", 67)} {
		f.Add(s)
	}
	dir := filepath.Join(string(filepath.Separator)+"store", "dir")
	f.Fuzz(func(t *testing.T, name string) {
		stem, err := filestore.StemOf(name)
		valid := name != "" && len(name) <= 200 && utf8.ValidString(name) && !strings.Contains(name, "\x00")
		if err != nil {
			if valid && len(stem) <= 200 && !strings.Contains(err.Error(), "escapes to") {
				t.Fatalf("valid name %q refused: %v", name, err)
			}
			return
		}
		if !valid {
			t.Fatalf("invalid name %q accepted", name)
		}
		if len(stem) > 200 || stem == "" || stem[0] == '.' || strings.ContainsAny(stem, `/\:`+"\x00") || stem != strings.ToLower(stem) {
			t.Fatalf("bad stem %q for %q", stem, name)
		}
		if p := filepath.Join(dir, stem+".age"); filepath.Dir(p) != dir {
			t.Fatalf("%q escapes the directory: %s", name, p)
		}
		back, ok := filestore.NameOf(stem)
		if !ok || back != name {
			t.Fatalf("round trip: %q → %q → %q, %v", name, stem, back, ok)
		}
	})
}

// FuzzReadPodioJSFile: any file content gives a session with an access
// token, ErrNotFound, or an error that does not quote the file; never a
// panic.
func FuzzReadPodioJSFile(f *testing.F) {
	for _, name := range []string{"password.json", "app.json", "cleared.json", "empty.json", "malformed.json"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "podiojs", name))
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
		a, err := filestore.ReadPodioJSFile(path)
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
