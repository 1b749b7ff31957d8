package filestore

import (
	"errors"

	"github.com/sessionstore/sessionstore/crypto"
)

// The errors of this package. Each is returned wrapped, with the file it
// concerns; test for them with errors.Is. No error carries a secret.
var (
	// ErrNotFound: no record is stored under the auth type.
	ErrNotFound = errors.New("no session stored")

	// ErrInvalidAuthType: the auth type is empty, longer than 200 bytes
	// (or its file name would be), not UTF-8, or contains NUL.
	ErrInvalidAuthType = errors.New("invalid auth type")

	// ErrWrongKey: no identity in the keyring opens the record.
	ErrWrongKey = crypto.ErrWrongKey

	// ErrTampered: the record was not written by a key holder, is bound
	// to another auth type, or is corrupt.
	ErrTampered = crypto.ErrTampered

	// ErrRollback: the record's sequence number went backwards while this
	// Store watched it (an older copy was put back in place).
	ErrRollback = errors.New("record was rolled back to an older version")

	// ErrInsecurePermissions: a key file accessible by group or others, a
	// store directory writable by them, either owned by another user, or
	// a symlink in place of a record.
	ErrInsecurePermissions = crypto.ErrInsecurePermissions

	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("store is closed")
)
