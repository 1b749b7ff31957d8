package filestore_test

import (
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
