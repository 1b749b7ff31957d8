package etcdstore

import (
	"context"
	"fmt"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/keys"
)

// openKeyFile locks keyFile, removes a temp key file that a killed
// rotation left (it holds secret keys), and loads it.
func openKeyFile(ctx context.Context, keyFile string, askPass func() (string, error)) (ring *crypto.Keyring, pass string, unlock func(), err error) {
	unlock, err = keys.LockFile(ctx, keyFile)
	if err != nil {
		return nil, "", nil, fmt.Errorf("etcdstore: %w", err)
	}
	if err := crypto.RemoveTempKeyFile(keyFile); err != nil {
		unlock()
		return nil, "", nil, fmt.Errorf("etcdstore: %w", err)
	}
	ring, pass, err = keys.Load(keyFile, askPass)
	if err != nil {
		unlock()
		return nil, "", nil, fmt.Errorf("etcdstore: %w", err)
	}
	return ring, pass, unlock, nil
}
