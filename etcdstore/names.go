package etcdstore

import (
	"fmt"
	"strings"

	"github.com/sessionstore/sessionstore"
)

// maxNameLen bounds an escaped key stem, in bytes (as for file stems).
const maxNameLen = sessionstore.MaxAuthTypeLen

// stemOf returns the key stem of authType, the same as filestore's file
// stem: every byte outside [a-z0-9._-] written as %xx (lowercase hex), and
// a leading "." as %2e. The result never contains "/", so no name's lock
// prefix (<prefix>/locks/<stem>/) contains another's, and an operator finds a name
// under the same stem in a directory and in a prefix.
func stemOf(authType string) (string, error) {
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
		return "", fmt.Errorf("etcdstore: auth type %q escapes to a %d-byte key name, more than %d: %w", authType, n, maxNameLen, sessionstore.ErrInvalidAuthType)
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

// nameOf reverses stemOf. It reports false for a stem that stemOf would
// not produce (a key that is not ours), so List never returns a name that
// maps to another file.
func nameOf(stem string) (string, bool) {
	if !strings.Contains(stem, "%") {
		if s, err := stemOf(stem); err != nil || s != stem {
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
	if s, err := stemOf(name); err != nil || s != stem {
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
