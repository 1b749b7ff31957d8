// Package names is the escaping of auth types into the stems of file
// names and etcd keys, shared by filestore and etcdstore.
package names

import (
	"fmt"
	"net/url"

	"github.com/sessionstore/sessionstore"
)

// Stem returns the stem of authType, its name in a store directory (before
// ".age") and under an etcd prefix: every byte outside [a-z0-9._-] written
// as %xx (lowercase hex), and a leading "." as %2e. The result never
// contains a path separator or "/", never starts with "." and never equals
// another name's stem on a case-insensitive file system; an operator finds
// a name under the same stem in a directory and in a prefix.
func Stem(authType string) (string, error) {
	if err := sessionstore.ValidateAuthType(authType); err != nil {
		return "", err
	}
	var b []byte // nil while nothing needs escaping: no allocation
	for i := 0; i < len(authType); i++ {
		c := authType[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' && i > 0 {
			if b != nil {
				b = append(b, c)
			}
			continue
		}
		if b == nil {
			b = append(make([]byte, 0, 3*len(authType)), authType[:i]...)
		}
		b = fmt.Appendf(b, "%%%02x", c)
	}
	if b == nil {
		return authType, nil // ValidateAuthType bounds its length
	}
	if len(b) > sessionstore.MaxAuthTypeLen {
		return "", fmt.Errorf("sessionstore: auth type %q escapes to a %d-byte name, more than %d: %w", authType, len(b), sessionstore.MaxAuthTypeLen, sessionstore.ErrInvalidAuthType)
	}
	return string(b), nil
}

// Name reverses Stem. It reports false for a stem that Stem would not
// produce (a file or key that is not a record), so that a listing never
// returns a name that maps to another record.
func Name(stem string) (string, bool) {
	name, err := url.PathUnescape(stem)
	if err != nil {
		return "", false
	}
	if s, err := Stem(name); err != nil || s != stem {
		return "", false
	}
	return name, true
}
