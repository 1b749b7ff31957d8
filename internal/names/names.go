// Package names is the escaping of auth types into the stems of file
// names and etcd keys, shared by filestore and etcdstore.
package names

import (
	"fmt"
	"strings"

	"github.com/sessionstore/sessionstore"
)

// maxNameLen bounds an escaped stem, in bytes.
const maxNameLen = sessionstore.MaxAuthTypeLen

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
	n := 0
	for i := 0; i < len(authType); i++ {
		if plain(authType[i]) && (i > 0 || authType[i] != '.') {
			n++
		} else {
			n += 3
		}
	}
	if n > maxNameLen {
		return "", fmt.Errorf("sessionstore: auth type %q escapes to a %d-byte name, more than %d: %w", authType, n, maxNameLen, sessionstore.ErrInvalidAuthType)
	}
	if n == len(authType) {
		return authType, nil // the common case: nothing to escape, no allocation
	}
	const hex = "0123456789abcdef"
	b := make([]byte, 0, n)
	for i := 0; i < len(authType); i++ {
		c := authType[i]
		if plain(c) && (i > 0 || c != '.') {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&0xf])
		}
	}
	return string(b), nil
}

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// Name reverses Stem. It reports false for a stem that Stem would not
// produce (a file or key that is not a record), so that a listing never
// returns a name that maps to another record.
func Name(stem string) (string, bool) {
	if !strings.Contains(stem, "%") {
		if s, err := Stem(stem); err != nil || s != stem {
			return "", false
		}
		return stem, true
	}
	b := make([]byte, 0, len(stem))
	for i := 0; i < len(stem); i++ {
		c := stem[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(stem) {
			return "", false
		}
		hi, ok1 := unhex(stem[i+1])
		lo, ok2 := unhex(stem[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	name := string(b)
	if s, err := Stem(name); err != nil || s != stem {
		return "", false
	}
	return name, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
