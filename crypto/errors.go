package crypto

import (
	"errors"

	"github.com/sessionstore/sessionstore/internal/fsutil"
)

var (
	// ErrWrongKey means that no identity in the keyring opens the record.
	ErrWrongKey = errors.New("no identity in the keyring opens the record")

	// ErrTampered means that the record was not written by a key holder,
	// is bound to another auth type, or is corrupt.
	ErrTampered = errors.New("record is forged, corrupt or bound to another auth type")

	// ErrInsecurePermissions means that a key file is accessible by group
	// or others, or is owned by another user.
	ErrInsecurePermissions = fsutil.ErrInsecure
)
