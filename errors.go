package sessionstore

import "errors"

// The errors of sessionstore, shared by every backend. Each is returned
// wrapped, with the file or key it concerns; test for them with errors.Is.
// No error carries a secret.
var (
	// ErrNotFound: no session is stored under the auth type.
	ErrNotFound = errors.New("no session stored")

	// ErrInvalidAuthType: the auth type is empty, longer than 200 bytes
	// (or its backend's name for it would be), not UTF-8, or contains NUL.
	ErrInvalidAuthType = errors.New("invalid auth type")

	// ErrWrongKey: no identity in the keyring opens the record. The
	// record may be fine for others: a rotation may have happened since
	// this keyring was loaded.
	ErrWrongKey = errors.New("no identity in the keyring opens the record")

	// ErrTampered: the record was not written by a key holder, is bound
	// to another auth type or namespace, or is corrupt.
	ErrTampered = errors.New("record is forged, corrupt or bound to another name")

	// ErrRollback: the record's sequence number went backwards while this
	// Store watched it (an older copy was put back in place).
	ErrRollback = errors.New("record was rolled back to an older version")

	// ErrInsecurePermissions: a key file accessible by group or others, a
	// store directory writable by them, either owned by another user, or
	// something other than a regular file (a symlink, a FIFO) in place of
	// one of the store's files.
	ErrInsecurePermissions = errors.New("insecure permissions")

	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("store is closed")

	// ErrLockLost: the lease of a record's lock ended before the write,
	// which was not applied (etcd).
	ErrLockLost = errors.New("record lock lost before the write")

	// ErrOutcomeUnknown: a fleet (etcd) write whose outcome could not be
	// established: etcd's answer was lost, and reading the record back
	// could not tell whether the write was applied. Re-read the record
	// before retrying.
	ErrOutcomeUnknown = errors.New("whether the write was applied is unknown")

	// ErrNeedsLogin: the provider refused the session's refresh token
	// (invalid_grant), and the session is marked so (Health.NeedsLogin):
	// no TokenSource asks the provider again until a new login is stored.
	ErrNeedsLogin = errors.New("session needs a new login")
)
