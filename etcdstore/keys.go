package etcdstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"

	"github.com/sessionstore/sessionstore/crypto"
)

// keyState is a loaded keyring and a digest of the files it came from.
type keyState struct {
	ring   *crypto.Keyring
	digest [sha256.Size]byte
}

// reloadKeys rereads the key files and swaps the keyring in if they
// changed. It reports whether they did. With WithKeyring it does nothing.
func (s *Store) reloadKeys() (changed bool, err error) {
	if s.keyFile == "" {
		return false, nil
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	keyData, recipData, d, err := s.readKeyFiles()
	if err != nil {
		return false, err
	}
	defer clear(keyData)
	if cur := s.keys.Load(); cur != nil && cur.digest == d {
		return false, nil
	}
	ring, err := crypto.ParseKeyData(s.keyFile, keyData, recipData, s.pass, s.countDerivation, s.extra...)
	if err != nil {
		return false, fmt.Errorf("etcdstore: %w", err)
	}
	s.keys.Store(&keyState{ring: ring, digest: d})
	if s.log.Enabled(context.Background(), slog.LevelInfo) { // spare a short-lived reader the encoding
		s.log.Info("sessionstore: keys loaded", "key_file", s.keyFile, "identities", ring.Len(), "primary", ring.PublicKey(0))
	}
	return true, nil
}

// countDerivation counts a key derivation (scrypt, for a
// passphrase-protected key file) made while this Store holds a record
// lock: never, by design (see lockCurrentKeys).
func (s *Store) countDerivation() {
	if s.locksHeld.Load() > 0 {
		s.derivedUnderLock.Add(1)
	}
}

// readKeyFiles reads the key file and its recipients file, with the digest
// that tells whether they changed.
func (s *Store) readKeyFiles() (keyData, recipData []byte, digest [sha256.Size]byte, err error) {
	keyData, recipData, err = crypto.ReadKeyFiles(s.keyFile)
	if err != nil {
		return nil, nil, digest, fmt.Errorf("etcdstore: %w", err)
	}
	return keyData, recipData, crypto.KeyFilesDigest(keyData, recipData), nil
}

// keysChanged reports whether the key files differ from the loaded
// keyring. It parses and derives nothing: cheap enough under a lock.
func (s *Store) keysChanged() (bool, error) {
	if s.keyFile == "" {
		return false, nil
	}
	keyData, _, d, err := s.readKeyFiles()
	if err != nil {
		return false, err
	}
	clear(keyData)
	return s.keys.Load().digest != d, nil
}
