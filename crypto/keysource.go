package crypto

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"

	"filippo.io/age"
)

// KeyFileEnv names the environment variable that stores read the key
// file's path from when they are given no key.
const KeyFileEnv = "SESSIONSTORE_KEY_FILE"

// credentialsKeyName is the key file's name in $CREDENTIALS_DIRECTORY
// (systemd credentials), the second default.
const credentialsKeyName = "sessionstore.key"

// DefaultKeyFile returns the key file that stores (and the commands) use
// without a key option: $SESSIONSTORE_KEY_FILE, else
// $CREDENTIALS_DIRECTORY/sessionstore.key.
func DefaultKeyFile() (string, error) {
	if p := os.Getenv(KeyFileEnv); p != "" {
		return p, nil
	}
	if d := os.Getenv("CREDENTIALS_DIRECTORY"); d != "" {
		return filepath.Join(d, credentialsKeyName), nil
	}
	return "", fmt.Errorf("no key file: set $%s or pass WithKeyFile; make one with: rekey -init -key FILE", KeyFileEnv)
}

// KeyFilesDigest is the digest of a key file and its recipients file as
// ReadKeyFiles returns them: equal digests, equal keyrings.
func KeyFilesDigest(keyData, recipData []byte) (d [sha256.Size]byte) {
	h := sha256.New()
	h.Write(keyData)
	h.Write([]byte{0})
	h.Write(recipData)
	h.Sum(d[:0])
	return d
}

// A Passphrase asks for the passphrase of a passphrase-protected key file
// the first time one is decrypted, and keeps it to decrypt the key file
// again after a rotation. It is not safe for concurrent use: stores call
// it under their key-reload lock.
//
// It also opens a key file sealed to age recipients, with the identity
// file of WithIdentity (see UnsealKeyFile).
type Passphrase struct {
	ask  func() (string, error) // nil: none was given
	p    string
	have bool
	id   KeyIdentity
}

// NewPassphrase returns a Passphrase that asks ask (nil if none was
// given).
func NewPassphrase(ask func() (string, error)) *Passphrase { return &Passphrase{ask: ask} }

// WithIdentity sets the identity that opens a key file sealed to age
// recipients, and returns pp.
func (pp *Passphrase) WithIdentity(id KeyIdentity) *Passphrase { pp.id = id; return pp }

// Decrypt decrypts the protected key file data read from path. Errors name
// path; ErrPassphraseRequired if no passphrase was given, or
// ErrIdentityRequired if it is sealed to age recipients and no identity
// file was given.
func (pp *Passphrase) Decrypt(path string, data []byte) ([]byte, error) {
	if IsSealedKeyFile(data) {
		plain, err := UnsealKeyFile(data, pp.id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return plain, nil
	}
	if !pp.have {
		if pp.ask == nil {
			return nil, fmt.Errorf("%s: %w (use WithPassphrase)", path, ErrPassphraseRequired)
		}
		p, err := pp.ask()
		if err != nil {
			return nil, fmt.Errorf("%s: passphrase: %w", path, err)
		}
		pp.p, pp.have = p, true
	}
	plain, err := DecryptKeyFile(data, pp.p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return plain, nil
}

// ParseKeyData parses a key file and its recipients file as ReadKeyFiles
// read them, as every backend loads its keys: a passphrase-protected key
// file is first decrypted with pass, and so is one sealed to age
// recipients, and extra recipients are added to the keyring.
func ParseKeyData(path string, keyData, recipData []byte, pass *Passphrase, extra ...age.Recipient) (*Keyring, error) {
	if IsEncryptedKeyFile(keyData) {
		plain, err := pass.Decrypt(path, keyData)
		if err != nil {
			return nil, err
		}
		defer clear(plain)
		keyData = plain
	}
	ring, err := ParseKeyFiles(path, keyData, recipData)
	if err != nil {
		return nil, err
	}
	return ring.WithRecipients(extra...)
}
