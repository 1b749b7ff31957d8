package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// KeyFileWorkFactor is the scrypt work factor (log2 N) with which
// EncryptKeyFile protects a key file: age's default, about a second. Tests
// lower it.
var KeyFileWorkFactor = 18

// ErrPassphraseRequired is returned for a passphrase-protected key file
// when no passphrase callback was given.
var ErrPassphraseRequired = errors.New("key file is passphrase-protected: a passphrase is required")

// IsEncryptedKeyFile reports whether data is a protected key file: an age
// file, binary or armored, as "age -p" writes (or "age -R", see
// IsSealedKeyFile).
func IsEncryptedKeyFile(data []byte) bool {
	return bytes.HasPrefix(data, []byte("age-encryption.org/v1\n")) ||
		bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(armor.Header))
}

// EncryptKeyFile protects a key file's contents with a passphrase, as
// "age -p -a" does (armored, scrypt at KeyFileWorkFactor).
func EncryptKeyFile(plain []byte, passphrase string) ([]byte, error) {
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, fmt.Errorf("keyring: %v", err)
	}
	r.SetWorkFactor(KeyFileWorkFactor)
	out, err := armorEncrypt(plain, r)
	if err != nil {
		return nil, fmt.Errorf("keyring: %v", err)
	}
	return out, nil
}

// ageIntro is the first line of every age file (not armored).
const ageIntro = "age-encryption.org/v1\n"

// maxKeyFileWorkFactor is the highest scrypt work factor (log2 N)
// DecryptKeyFile accepts: age's default. Fuzz tests lower it.
var maxKeyFileWorkFactor = 22

// DecryptKeyFile opens a passphrase-protected key file. A wrong passphrase
// is an error that says so and nothing more; no error quotes the file.
func DecryptKeyFile(data []byte, passphrase string) ([]byte, error) {
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("keyring: %v", err) // only ever "passphrase can't be empty"
	}
	id.SetMaxWorkFactor(maxKeyFileWorkFactor)
	var src io.Reader = bytes.NewReader(data)
	if !bytes.HasPrefix(data, []byte(ageIntro)) {
		src = armor.NewReader(src)
	}
	// Never wrap age's or armor's errors: they can quote the file's lines.
	r, err := age.Decrypt(src, id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, errors.New("keyring: wrong passphrase for the key file")
		}
		return nil, fmt.Errorf("keyring: passphrase-protected key file: its age header is malformed or altered (or asks for an scrypt work factor above 2^%d)", maxKeyFileWorkFactor)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize+1))
	if err != nil {
		clear(plain)
		return nil, errors.New("keyring: passphrase-protected key file: its content is altered or truncated")
	}
	if len(plain) > maxKeyFileSize {
		return nil, errors.New("keyring: key file is too long")
	}
	return plain, nil
}

// LoadKeyringWithPassphrase is LoadKeyring for a key file that may be
// passphrase-protected: passphrase is called, once, only if it is. A key
// file sealed to age recipients is opened with $SESSIONSTORE_KEY_IDENTITY.
func LoadKeyringWithPassphrase(path string, passphrase func() (string, error)) (*Keyring, error) {
	return LoadKeyringWithIdentity(path, passphrase, KeyIdentity{})
}

// LoadKeyringWithIdentity is LoadKeyringWithPassphrase, opening a key
// file sealed to age recipients with id.
func LoadKeyringWithIdentity(path string, passphrase func() (string, error), id KeyIdentity) (*Keyring, error) {
	keyData, recipData, err := ReadKeyFiles(path)
	if err != nil {
		return nil, err
	}
	defer clear(keyData)
	if IsSealedKeyFile(keyData) {
		plain, err := UnsealKeyFile(keyData, id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer clear(plain)
		keyData = plain
	} else if IsEncryptedKeyFile(keyData) {
		if passphrase == nil {
			return nil, fmt.Errorf("keyring: %s: %w", path, ErrPassphraseRequired)
		}
		p, err := passphrase()
		if err != nil {
			return nil, fmt.Errorf("keyring: %s: passphrase: %w", path, err)
		}
		plain, err := DecryptKeyFile(keyData, p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer clear(plain)
		keyData = plain
	}
	return ParseKeyFiles(path, keyData, recipData)
}
