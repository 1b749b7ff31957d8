package filestore

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"

	"github.com/gofrs/flock"
	"github.com/sessionstore/sessionstore"
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
		return false, fmt.Errorf("filestore: %w", err)
	}
	if ring, err = ring.WithRecipients(s.extra...); err != nil {
		return false, fmt.Errorf("filestore: %w", err)
	}
	s.keys.Store(&keyState{ring: ring, digest: d})
	s.log.Info("sessionstore: keys loaded", "key_file", s.keyFile, "identities", ring.Len(), "primary", ring.PublicKey(0))
	return true, nil
}

// readKeyFiles reads the key file and its recipients file, with the digest
// that tells whether they changed.
func (s *Store) readKeyFiles() (keyData, recipData []byte, digest [sha256.Size]byte, err error) {
	keyData, recipData, err = crypto.ReadKeyFiles(s.keyFile)
	if err != nil {
		return nil, nil, digest, fmt.Errorf("filestore: %w", err)
	}
	h := sha256.New()
	h.Write(keyData)
	h.Write([]byte{0})
	h.Write(recipData)
	h.Sum(digest[:0])
	return keyData, recipData, digest, nil
}

// keysChanged reports whether the key files differ from the loaded
// keyring. It parses nothing and derives nothing: cheap enough under a
// record lock.
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

// decryptKeyFile opens a passphrase-protected key file, asking for the
// passphrase the first time only. s.keyMu is held.
func (s *Store) decryptKeyFile(data []byte) ([]byte, error) {
	if s.locksHeld.Load() > 0 {
		s.derivedUnderLock.Add(1) // never, by design: see Store.write
	}
	if !s.havePass {
		if s.askPass == nil {
			return nil, fmt.Errorf("filestore: %s: %w (use WithPassphrase)", s.keyFile, crypto.ErrPassphraseRequired)
		}
		p, err := s.askPass()
		if err != nil {
			return nil, fmt.Errorf("filestore: %s: passphrase: %w", s.keyFile, err)
		}
		s.passphrase, s.havePass = p, true
	}
	plain, err := crypto.DecryptKeyFile(data, s.passphrase)
	if err != nil {
		return nil, fmt.Errorf("filestore: %s: %w", s.keyFile, err)
	}
	return plain, nil
}

// wrongKeyHint says, after an error wrapping ErrWrongKey, what most likely
// happened: a rotation this Store did not follow.
func (s *Store) wrongKeyHint(err error) string {
	if !errors.Is(err, sessionstore.ErrWrongKey) {
		return ""
	}
	if s.keyFile == "" {
		return "; the key may have been rotated: this Store has fixed keys (WithKeyring), and a Store opened WithKeyFile follows rotations"
	}
	return fmt.Sprintf("; it is not sealed to any key in %s (a foreign record, or a key file restored from before a rotation)", s.keyFile)
}

// removeTempKeyFile removes the temp key file that a rotation killed
// mid-write left next to the key file (it holds secret keys), if no
// rotation is running now: it takes the key file's lock without waiting,
// and leaves the file to the next rekey if it cannot.
func (s *Store) removeTempKeyFile() {
	tmp := crypto.TempKeyFile(s.keyFile)
	if _, err := os.Lstat(tmp); err != nil {
		return
	}
	lk := flock.New(s.keyFile+lockSuffix, flock.SetFlag(lockFlag), flock.SetPermissions(0o600))
	if ok, err := lk.TryLock(); err != nil || !ok {
		s.log.Warn("sessionstore: a temp key file is left from a killed rotation; the next rekey removes it", "file", tmp)
		return
	}
	defer lk.Unlock()
	if err := crypto.RemoveTempKeyFile(s.keyFile); err != nil {
		s.log.Warn("sessionstore: cannot remove a temp key file left from a killed rotation", "file", tmp, "err", err)
		return
	}
	s.log.Info("sessionstore: removed a temp key file left from a killed rotation", "file", tmp)
}
