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

// Config says where a Store's keys come from.
type Config struct {
	Pkg      string          // the backend's name, for errors and logs
	File     string          // the key file; "" with Ring: the default key file
	Ring     *crypto.Keyring // fixed keys
	Extra    []age.Recipient // sealed to as well
	AskPass  func() (string, error)
	Identity crypto.KeyIdentity // opens a key file sealed to age recipients
	Log      *slog.Logger
}

// Keys is a Store's keyring. It is safe for concurrent use.
type Keys struct {
	c   Config // c.File is absolute, "" for fixed keys
	mu  sync.Mutex
	cur atomic.Pointer[state]
}

// state is a loaded keyring with the digest and identity of its files.
type state struct {
	ring   *crypto.Keyring
	digest [sha256.Size]byte
	files  filesID
}

// filesID identifies the key and recipients files as read once they are
// old enough that one fstatat each tells a change (fsutil.FileID.SafeAt);
// zero until then.
type filesID struct{ key, recipients fsutil.FileID }

// New loads the keys of c.
func New(c Config) (*Keys, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	k := &Keys{c: c}
	if c.Ring != nil {
		ring, err := c.Ring.WithRecipients(c.Extra...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Pkg, err)
		}
		k.c.File = ""
		k.cur.Store(&state{ring: ring})
		return k, nil
	}
	if k.c.File == "" {
		f, err := crypto.DefaultKeyFile()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Pkg, err)
		}
		k.c.File = f
	}
	if abs, err := filepath.Abs(k.c.File); err == nil {
		k.c.File = abs
	}
	if ask := c.AskPass; ask != nil { // asked once, kept for the reloads after a rotation
		var p *string
		k.c.AskPass = func() (string, error) {
			if p == nil {
				s, err := ask()
				if err != nil {
					return "", err
				}
				p = &s
			}
			return *p, nil
		}
	}
	if _, err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// File is the key file, "" for fixed keys.
func (k *Keys) File() string { return k.c.File }

// Ring is the keyring now.
func (k *Keys) Ring() *crypto.Keyring { return k.cur.Load().ring }

// Reload rereads the key files and swaps the keyring in if they changed.
// It reports whether they did. With fixed keys it does nothing.
func (k *Keys) Reload() (changed bool, err error) {
	if k.c.File == "" {
		return false, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// The first load leaves the files' identity to the first Changed: a
	// short-lived reader pays for none of it.
	cur := k.cur.Load()
	keyData, recipData, d, files, err := k.read(cur != nil)
	if err != nil {
		return false, err
	}
	defer clear(keyData)
	if cur != nil && cur.digest == d {
		if files != cur.files {
			k.cur.Store(&state{ring: cur.ring, digest: d, files: files})
		}
		return false, nil
	}
	ring, err := crypto.OpenKeyFiles(k.c.File, keyData, recipData, k.c.AskPass, k.c.Identity)
	if err == nil {
		ring, err = ring.WithRecipients(k.c.Extra...)
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", k.c.Pkg, err)
	}
	k.cur.Store(&state{ring: ring, digest: d, files: files})
	if k.c.Log.Enabled(context.Background(), slog.LevelInfo) { // spare a short-lived reader the encoding
		k.c.Log.Info("sessionstore: keys loaded", "key_file", k.c.File, "identities", ring.Len(), "primary", ring.PublicKey(0))
	}
	return true, nil
}

// Changed reports whether the key files differ from the loaded keyring:
// two fstatat calls once their identity is known, else a read and a hash.
// It parses and derives nothing, cheap enough under a record lock.
func (k *Keys) Changed() (bool, error) {
	if k.c.File == "" {
		return false, nil
	}
	cur := k.cur.Load()
	if cur.files != (filesID{}) {
		if now, err := k.stat(); err == nil && now == cur.files {
			return false, nil
		}
	}
	keyData, _, d, files, err := k.read(true)
	if err != nil {
		return false, err
	}
	clear(keyData)
	if cur.digest != d {
		return true, nil
	}
	// Unchanged: remember the files' identity. Never wait for mu here (a
	// reload may be running a plugin or scrypt).
	if files != cur.files && k.mu.TryLock() {
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
	switch {
	case !errors.Is(err, sessionstore.ErrWrongKey):
		return ""
	case k.c.File == "":
		return "; the key may have been rotated: this Store has fixed keys (WithKeyring), and a Store opened WithKeyFile follows rotations"
	}
	return fmt.Sprintf("; it is not sealed to any key in %s (a foreign record, or a key file restored from before a rotation)", k.c.File)
}

// read reads the key files, their digest and, if withID, their identity if
// it stood still during the read and is old enough to stand for the bytes.
func (k *Keys) read(withID bool) (keyData, recipData []byte, digest [sha256.Size]byte, files filesID, err error) {
	var before filesID
	if withID {
		before, err = k.stat()
		withID = err == nil
	}
	keyData, recipData, err = crypto.ReadKeyFiles(k.c.File)
	if err != nil {
		return nil, nil, digest, files, fmt.Errorf("%s: %w", k.c.Pkg, err)
	}
	h := sha256.New()
	h.Write(keyData)
	h.Write([]byte{0})
	h.Write(recipData)
	h.Sum(digest[:0])
	if withID {
		now := time.Now()
		if after, err := k.stat(); err == nil && after == before &&
			before.key.SafeAt(now) && (before.recipients == fsutil.FileID{} || before.recipients.SafeAt(now)) {
			files = before
		}
	}
	return keyData, recipData, digest, files, nil
}

// stat returns the key files' identity (zero for no recipients file).
func (k *Keys) stat() (filesID, error) {
	key, err := fsutil.StatID(k.c.File)
	if err != nil {
		return filesID{}, err
	}
	r, err := fsutil.StatID(k.c.File + crypto.RecipientsSuffix)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return filesID{}, err
	}
	return filesID{key: key, recipients: r}, nil
}
