package etcdstore

import (
	"context"
	"fmt"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/keys"
)

// openKeyFile locks keyFile, removes a temp key file that a killed
// rotation left (it holds secret keys), and loads it (with id if it is
// sealed to age recipients).
func openKeyFile(ctx context.Context, keyFile string, askPass func() (string, error), id crypto.KeyIdentity) (ring *crypto.Keyring, pass string, unlock func(), err error) {
	unlock, err = keys.LockFile(ctx, keyFile)
	if err != nil {
		return nil, "", nil, fmt.Errorf("etcdstore: %w", err)
	}
	if err := crypto.RemoveTempKeyFile(keyFile); err != nil {
		unlock()
		return nil, "", nil, fmt.Errorf("etcdstore: %w", err)
	}
	ring, pass, err = keys.Load(keyFile, askPass, id)
	if err != nil {
		unlock()
		return nil, "", nil, fmt.Errorf("etcdstore: %w", err)
	}
	return ring, pass, unlock, nil
}
