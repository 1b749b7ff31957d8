package sessionstore

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Store is what every backend implements: the "session manager" of
// Podio-style SDKs, whose get(authType) is Get and set(authObject,
// authType) is Set. Implementations are safe for concurrent use.
//
// Every backend keeps these rules (package sessionstoretest checks them):
//
//   - An auth type is any name ValidateAuthType accepts; others are
//     ErrInvalidAuthType.
//   - Get returns a value the caller owns; Set and Update keep no reference
//     to the caller's value.
//   - Set over a record that cannot be opened because it is corrupt,
//     oversized, truncated or forged replaces it. Set over a well-formed
//     record sealed to a key this Store does not hold returns ErrWrongKey
//     and changes nothing.
type Store interface {
	// Get returns the session stored under authType, or an error
	// wrapping ErrNotFound.
	Get(ctx context.Context, authType string) (AuthObject, error)

	// Set stores auth under authType, replacing what was there.
	Set(ctx context.Context, authType string, auth AuthObject) error

	// Update runs fn under the record's lock (across processes, and for
	// etcdstore across hosts) and stores what it returns. fn runs at most
	// once per call. If fn returns an error nothing is written and Update
	// returns it; if it returns a value Equal to cur, nothing is written
	// either. A record that cannot be opened makes Update fail without
	// calling fn.
	Update(ctx context.Context, authType string,
		fn func(cur AuthObject, exists bool) (AuthObject, error)) (AuthObject, error)

	// Delete removes the session stored under authType; a missing one is
	// not an error.
	Delete(ctx context.Context, authType string) error

	// List returns the stored auth types, sorted.
	List(ctx context.Context) ([]string, error)

	// Close releases the Store. Later calls of every method return
	// ErrClosed.
	Close() error
}

// MaxAuthTypeLen is the longest auth type, in bytes.
const MaxAuthTypeLen = 200

// ValidateAuthType returns an error wrapping ErrInvalidAuthType unless
// authType is a non-empty UTF-8 string of at most MaxAuthTypeLen bytes
// without NUL: "server", "client", "password", "app:12345",
// "user@example.com" are all valid.
func ValidateAuthType(authType string) error {
	switch {
	case authType == "":
		return fmt.Errorf("sessionstore: auth type is empty: %w", ErrInvalidAuthType)
	case len(authType) > MaxAuthTypeLen:
		return fmt.Errorf("sessionstore: auth type is %d bytes, more than %d: %w", len(authType), MaxAuthTypeLen, ErrInvalidAuthType)
	case !utf8.ValidString(authType):
		return fmt.Errorf("sessionstore: auth type %q is not valid UTF-8: %w", authType, ErrInvalidAuthType)
	case strings.IndexByte(authType, 0) >= 0:
		return fmt.Errorf("sessionstore: auth type %q contains NUL: %w", authType, ErrInvalidAuthType)
	}
	return nil
}
