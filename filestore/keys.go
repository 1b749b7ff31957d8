package filestore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/gofrs/flock"
	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// keyState is a loaded keyring and a digest of the files it came from.
type keyState struct {
	ring   *crypto.Keyring
	digest [sha256.Size]byte
	files  keyFilesID // the identity of the files read, if stable
}

// keyFilesID identifies the key file and recipients file as read; safe
// when both were read long enough after they last changed that one
// fstatat each tells whether they changed since (see fsutil.FileID).
type keyFilesID struct {
	key, recipients fsutil.FileID
	safe            bool
}

// statKeyFiles returns the identity of the key files now (a missing
// recipients file has the zero identity).
func (s *Store) statKeyFiles() (keyFilesID, error) {
	k, err := fsutil.StatID(s.keyFile)
	if err != nil {
		return keyFilesID{}, err
	}
	r, err := fsutil.StatID(s.keyFile + crypto.RecipientsSuffix)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return keyFilesID{}, err
	}
	return keyFilesID{key: k, recipients: r}, nil
}

// reloadKeys rereads the key files and swaps the keyring in if they
// changed. It reports whether they did. With WithKeyring it does nothing.
func (s *Store) reloadKeys() (changed bool, err error) {
	if s.keyFile == "" {
		return false, nil
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	// The files' identity serves writers' checks under a record lock; the
	// first load (Open) leaves it to the first write (keysChanged), so that
	// a short-lived reader pays for none of it.
	first := s.keys.Load() == nil
	var before keyFilesID
	var statErr error
	if !first {
		before, statErr = s.statKeyFiles()
	}
	keyData, recipData, d, err := s.readKeyFiles()
	if err != nil {
		return false, err
	}
	defer clear(keyData)
	var files keyFilesID
	if !first {
		files = s.stableID(before, statErr)
	}
	if cur := s.keys.Load(); cur != nil && cur.digest == d {
		if files != cur.files {
			s.keys.Store(&keyState{ring: cur.ring, digest: d, files: files})
		}
		return false, nil
	}
	ring, err := crypto.ParseKeyData(s.keyFile, keyData, recipData, s.pass, s.countDerivation, s.extra...)
	if err != nil {
		return false, fmt.Errorf("filestore: %w", err)
	}
	s.keys.Store(&keyState{ring: ring, digest: d, files: files})
	if s.log.Enabled(context.Background(), slog.LevelInfo) { // spare a short-lived reader the encoding
		s.log.Info("sessionstore: keys loaded", "key_file", s.keyFile, "identities", ring.Len(), "primary", ring.PublicKey(0))
	}
	return true, nil
}

// readKeyFiles reads the key file and its recipients file, with the digest
// that tells whether they changed.
func (s *Store) readKeyFiles() (keyData, recipData []byte, digest [sha256.Size]byte, err error) {
	keyData, recipData, err = crypto.ReadKeyFiles(s.keyFile)
	if err != nil {
		return nil, nil, digest, fmt.Errorf("filestore: %w", err)
	}
	return keyData, recipData, crypto.KeyFilesDigest(keyData, recipData), nil
}

// stableID returns the key files' identity taken before a read, marked
// safe if it is unchanged after the read and old enough to stand for the
// bytes read.
func (s *Store) stableID(before keyFilesID, statErr error) keyFilesID {
	if statErr != nil {
		return keyFilesID{}
	}
	after, err := s.statKeyFiles()
	if err != nil || after != before {
		return keyFilesID{}
	}
	now := time.Now()
	before.safe = before.key.SafeAt(now) &&
		(before.recipients == fsutil.FileID{} || before.recipients.SafeAt(now))
	return before
}

// keysChanged reports whether the key files differ from the loaded
// keyring. It parses nothing and derives nothing: cheap enough under a
// record lock. Where the loaded files' identity is safe, it costs two
// fstatat calls; otherwise it reads and hashes the files.
func (s *Store) keysChanged() (bool, error) {
	if s.keyFile == "" {
		return false, nil
	}
	cur := s.keys.Load()
	if cur.files.safe {
		if now, err := s.statKeyFiles(); err == nil {
			now.safe = true
			if now == cur.files {
				return false, nil
			}
		}
	}
	before, statErr := s.statKeyFiles()
	keyData, _, d, err := s.readKeyFiles()
	if err != nil {
		return false, err
	}
	clear(keyData)
	if cur.digest != d {
		return true, nil
	}
	// Unchanged: remember the files' identity, so that the next check
	// is two fstatat calls once it is safe. Never wait for keyMu here (a
	// reload may be deriving a key).
	if files := s.stableID(before, statErr); files != cur.files && s.keyMu.TryLock() {
		if s.keys.Load() == cur {
			s.keys.Store(&keyState{ring: cur.ring, digest: d, files: files})
		}
		s.keyMu.Unlock()
	}
	return false, nil
}

// countDerivation counts a key derivation (scrypt, for a
// passphrase-protected key file) made while this Store holds a record
// lock: never, by design (see Store.write).
func (s *Store) countDerivation() {
	if s.locksHeld.Load() > 0 {
		s.derivedUnderLock.Add(1)
	}
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
