package etcdstore

import (
	"context"
	"fmt"
	"time"

	"github.com/gofrs/flock"

	"github.com/sessionstore/sessionstore/crypto"
)

// keyLockSuffix names the lock file of a key file: the one filestore's
// rotation takes too, so that no two rotations of a key file interleave.
const keyLockSuffix = ".lock"

// lockKeyFile takes keyFile+".lock" exclusively, waiting until ctx is
// done.
func lockKeyFile(ctx context.Context, keyFile string) (unlock func(), err error) {
	lk := flock.New(keyFile+keyLockSuffix, flock.SetFlag(keyLockFlag), flock.SetPermissions(0o600))
	ok, err := lk.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil || !ok {
		lk.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("etcdstore: lock %s%s: %w", keyFile, keyLockSuffix, err)
	}
	return func() { lk.Unlock(); lk.Close() }, nil
}

// loadKeyring loads keyFile, asking for its passphrase if it is protected,
// and returns the passphrase ("" if none) for writing it back.
func loadKeyring(keyFile string, askPass func() (string, error)) (*crypto.Keyring, string, error) {
	var pass string
	ring, err := crypto.LoadKeyringWithPassphrase(keyFile, func() (string, error) {
		if askPass == nil {
			return "", crypto.ErrPassphraseRequired
		}
		p, err := askPass()
		pass = p
		return p, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("etcdstore: %w", err)
	}
	return ring, pass, nil
}

// openKeyFile locks keyFile, removes a temp key file that a killed
// rotation left (it holds secret keys), and loads it.
func openKeyFile(ctx context.Context, keyFile string, askPass func() (string, error)) (ring *crypto.Keyring, pass string, unlock func(), err error) {
	unlock, err = lockKeyFile(ctx, keyFile)
	if err != nil {
		return nil, "", nil, err
	}
	if err := crypto.RemoveTempKeyFile(keyFile); err != nil {
		unlock()
		return nil, "", nil, fmt.Errorf("etcdstore: %w", err)
	}
	ring, pass, err = loadKeyring(keyFile, askPass)
	if err != nil {
		unlock()
		return nil, "", nil, err
	}
	return ring, pass, unlock, nil
}
