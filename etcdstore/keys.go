package etcdstore

import (
	"crypto/sha256"
	"fmt"

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
	parseData := keyData
	if crypto.IsEncryptedKeyFile(keyData) {
		if parseData, err = s.decryptKeyFile(keyData); err != nil {
			return false, err
		}
		defer clear(parseData)
	}
	ring, err := crypto.ParseKeyFiles(s.keyFile, parseData, recipData)
	if err != nil {
		return false, fmt.Errorf("etcdstore: %w", err)
	}
	if ring, err = ring.WithRecipients(s.extra...); err != nil {
		return false, fmt.Errorf("etcdstore: %w", err)
	}
	s.keys.Store(&keyState{ring: ring, digest: d})
	s.log.Info("sessionstore: keys loaded", "key_file", s.keyFile, "identities", ring.Len(), "primary", ring.PublicKey(0))
	return true, nil
}

// decryptKeyFile opens a passphrase-protected key file, asking for the
// passphrase the first time only. s.keyMu is held.
func (s *Store) decryptKeyFile(data []byte) ([]byte, error) {
	if s.locksHeld.Load() > 0 {
		s.derivedUnderLock.Add(1) // never, by design: see lockCurrentKeys
	}
	plain, err := s.pass.Decrypt(s.keyFile, data)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: %w", err)
	}
	return plain, nil
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
