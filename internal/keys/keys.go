// Package keys is a Store's keyring: loaded from its key file and reloaded
// when the file changes, or fixed. Every backend holds its keys through
// it, so that they follow a rotation the same way.
package keys

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// Keys is a Store's keyring. It is safe for concurrent use.
type Keys struct {
	file  string // "": fixed keys
	pkg   string // the backend's name, the prefix of its errors
	extra []age.Recipient
	pass  *crypto.Passphrase
	log   *slog.Logger

	mu  sync.Mutex // serialises reloads
	cur atomic.Pointer[state]
}

// state is a loaded keyring and what it was loaded from.
type state struct {
	ring   *crypto.Keyring
	digest [sha256.Size]byte
	files  filesID
}

// filesID identifies the key file and recipients file as read; safe when
// both were read long enough after they last changed that one fstatat
// each tells whether they changed since (see fsutil.FileID).
type filesID struct {
	key, recipients fsutil.FileID
	safe            bool
}

// Config says where a Store's keys come from.
type Config struct {
	Pkg     string          // the backend's name, for errors and logs
	File    string          // the key file; "" with Ring
	Ring    *crypto.Keyring // fixed keys
	Extra   []age.Recipient // sealed to as well
	AskPass func() (string, error)
	// Identity opens a key file sealed to age recipients (plugins): once
	// per process for given key file bytes (see crypto.UnsealKeyFile).
	Identity crypto.KeyIdentity
	Log      *slog.Logger
}

// New loads the keys of c. Without File or Ring it uses the default key
// file (see crypto.DefaultKeyFile).
func New(c Config) (*Keys, error) {
	k := &Keys{pkg: c.Pkg, extra: c.Extra, log: c.Log}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	if c.Ring != nil {
		ring, err := c.Ring.WithRecipients(c.Extra...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Pkg, err)
		}
		k.cur.Store(&state{ring: ring})
		return k, nil
	}
	k.file = c.File
	if k.file == "" {
		f, err := crypto.DefaultKeyFile()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Pkg, err)
		}
		k.file = f
	}
	if abs, err := filepath.Abs(k.file); err == nil {
		k.file = abs
	}
	k.pass = crypto.NewPassphrase(c.AskPass).WithIdentity(c.Identity)
	if _, err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// File is the key file, "" for fixed keys.
func (k *Keys) File() string { return k.file }

// Ring is the keyring now.
func (k *Keys) Ring() *crypto.Keyring { return k.cur.Load().ring }

// Reload rereads the key files and swaps the keyring in if they changed.
// It reports whether they did. With fixed keys it does nothing.
func (k *Keys) Reload() (changed bool, err error) {
	if k.file == "" {
		return false, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// The files' identity serves writers' checks under a record lock; the
	// first load leaves it to the first check (Changed), so that a
	// short-lived reader pays for none of it.
	first := k.cur.Load() == nil
	var before filesID
	var statErr error
	if !first {
		before, statErr = k.stat()
	}
	keyData, recipData, d, err := k.read()
	if err != nil {
		return false, err
	}
	defer clear(keyData)
	var files filesID
	if !first {
		files = k.stable(before, statErr)
	}
	if cur := k.cur.Load(); cur != nil && cur.digest == d {
		if files != cur.files {
			k.cur.Store(&state{ring: cur.ring, digest: d, files: files})
		}
		return false, nil
	}
	ring, err := crypto.ParseKeyData(k.file, keyData, recipData, k.pass, k.extra...)
	if err != nil {
		return false, fmt.Errorf("%s: %w", k.pkg, err)
	}
	k.cur.Store(&state{ring: ring, digest: d, files: files})
	if k.log.Enabled(context.Background(), slog.LevelInfo) { // spare a short-lived reader the encoding
		k.log.Info("sessionstore: keys loaded", "key_file", k.file, "identities", ring.Len(), "primary", ring.PublicKey(0))
	}
	return true, nil
}

// Changed reports whether the key files differ from the loaded keyring. It
// parses nothing and derives nothing: cheap enough under a record lock.
// Where the loaded files' identity is safe, it costs two fstatat calls;
// otherwise it reads and hashes the files.
func (k *Keys) Changed() (bool, error) {
	if k.file == "" {
		return false, nil
	}
	cur := k.cur.Load()
	if cur.files.safe {
		if now, err := k.stat(); err == nil {
			now.safe = true
			if now == cur.files {
				return false, nil
			}
		}
	}
	before, statErr := k.stat()
	keyData, _, d, err := k.read()
	if err != nil {
		return false, err
	}
	clear(keyData)
	if cur.digest != d {
		return true, nil
	}
	// Unchanged: remember the files' identity, so that the next check is
	// two fstatat calls once it is safe. Never wait for mu here (a reload
	// may be deriving a key).
	if files := k.stable(before, statErr); files != cur.files && k.mu.TryLock() {
		if k.cur.Load() == cur {
			k.cur.Store(&state{ring: cur.ring, digest: d, files: files})
		}
		k.mu.Unlock()
	}
	return false, nil
}

// WrongKeyHint says, after an error wrapping sessionstore.ErrWrongKey, what
// most likely happened: a rotation these keys did not follow.
func (k *Keys) WrongKeyHint(err error) string {
	if !errors.Is(err, sessionstore.ErrWrongKey) {
		return ""
	}
	if k.file == "" {
		return "; the key may have been rotated: this Store has fixed keys (WithKeyring), and a Store opened WithKeyFile follows rotations"
	}
	return fmt.Sprintf("; it is not sealed to any key in %s (a foreign record, or a key file restored from before a rotation)", k.file)
}

// read reads the key file and its recipients file, with the digest that
// tells whether they changed.
func (k *Keys) read() (keyData, recipData []byte, digest [sha256.Size]byte, err error) {
	keyData, recipData, err = crypto.ReadKeyFiles(k.file)
	if err != nil {
		return nil, nil, digest, fmt.Errorf("%s: %w", k.pkg, err)
	}
	return keyData, recipData, crypto.KeyFilesDigest(keyData, recipData), nil
}

// stat returns the identity of the key files now (a missing recipients
// file has the zero identity).
func (k *Keys) stat() (filesID, error) {
	key, err := fsutil.StatID(k.file)
	if err != nil {
		return filesID{}, err
	}
	r, err := fsutil.StatID(k.file + crypto.RecipientsSuffix)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return filesID{}, err
	}
	return filesID{key: key, recipients: r}, nil
}

// stable returns the key files' identity taken before a read, marked safe
// if it is unchanged after the read and old enough to stand for the bytes
// read.
func (k *Keys) stable(before filesID, statErr error) filesID {
	if statErr != nil {
		return filesID{}
	}
	after, err := k.stat()
	if err != nil || after != before {
		return filesID{}
	}
	now := time.Now()
	before.safe = before.key.SafeAt(now) &&
		(before.recipients == fsutil.FileID{} || before.recipients.SafeAt(now))
	return before
}
