package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age/plugin"

	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// MarshalKeyFile returns k in age-keygen's identity file format, the
// primary first:
//
//	# created: 2026-11-27T10:00:00Z
//	# public key: age1…
//	AGE-SECRET-KEY-1…
//
// Identities after the primary are marked decrypt-only.
func (k *Keyring) MarshalKeyFile(created time.Time) []byte {
	var b bytes.Buffer
	if k.rotating {
		b.WriteString(rotationMarker + "\n")
	}
	if k.staged {
		b.WriteString(stagedMarker + "\n")
	}
	for i, secret := range k.secrets {
		switch {
		case i == 0:
			fmt.Fprintf(&b, "# created: %s\n", created.Format(time.RFC3339))
		case k.staged && i == len(k.secrets)-1:
			fmt.Fprintf(&b, "\n# staged: the next primary (created: %s), decrypt-only until promoted\n", created.Format(time.RFC3339))
		default:
			fmt.Fprintf(&b, "\n# decrypt-only: an older key, kept until every record is resealed\n")
		}
		fmt.Fprintf(&b, "# public key: %s\n", k.PublicKey(i))
		fmt.Fprintf(&b, "%s\n", secret)
	}
	return b.Bytes()
}

// CreateKeyFile writes k to a new key file at path, mode 0600. It refuses
// to overwrite an existing file.
func CreateKeyFile(path string, k *Keyring) error {
	return CreateKeyFileWithPassphrase(path, k, "")
}

// CreateKeyFileWithPassphrase is CreateKeyFile, protecting the file with
// passphrase (as "age -p -a") unless it is empty.
func CreateKeyFileWithPassphrase(path string, k *Keyring, passphrase string) error {
	data, err := keyFileBytes(k, passphrase)
	if err != nil {
		return err
	}
	defer clear(data)
	return createKeyFile(path, data)
}

// CreateSealedKeyFile is CreateKeyFile, sealing the file to recipients
// (as "age -a -r", see ParseSealRecipients) and writing them, public,
// beside it in path+SealedToSuffix, so that ReplaceKeyFile seals to them
// again. Plugin recipients run their plugin (with ui, nil for
// DefaultPluginUI) before anything is written.
func CreateSealedKeyFile(path string, k *Keyring, recipients []string, ui *plugin.ClientUI) error {
	list := []byte(strings.Join(recipients, "\n") + "\n")
	rs, err := ParseSealRecipients(list, ui)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	plain := k.MarshalKeyFile(time.Now())
	defer clear(plain)
	data, err := SealKeyFile(plain, rs)
	if err != nil {
		return err
	}
	if err := createKeyFile(path, data); err != nil {
		return err
	}
	// Public, but written like the key file: O_EXCL, synced.
	if err := createKeyFile(path+SealedToSuffix, list); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// createKeyFile writes data to a new file at path, mode 0600, durably.
func createKeyFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if err := f.Chmod(0o600); err != nil && !isWindows() {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("keyring: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("keyring: %w", err)
	}
	return fsutil.SyncDir(filepath.Dir(path))
}

// ReplaceKeyFile atomically and durably replaces the key file at path with
// k (temp file 0600 in the same directory, fsync, rename, directory
// fsync). The caller must keep other writers of path out (rekey holds
// path+".lock").
func ReplaceKeyFile(path string, k *Keyring) error {
	return ReplaceKeyFileWithPassphrase(path, k, "")
}

// ReplaceKeyFileWithPassphrase is ReplaceKeyFile, protecting the file with
// passphrase (as "age -p -a") unless it is empty. A key file with a
// path+SealedToSuffix beside it is sealed to the recipients listed there
// again (their plugins run before anything is written).
func ReplaceKeyFileWithPassphrase(path string, k *Keyring, passphrase string) error {
	dir, name, tmp := tempKeyFile(path)
	rs, err := ReadSealedTo(path, nil)
	if err != nil {
		return err
	}
	var data []byte
	switch {
	case rs != nil && passphrase != "":
		return fmt.Errorf("keyring: %s is sealed to the recipients in %s%s: it takes no passphrase", path, path, SealedToSuffix)
	case rs != nil:
		plain := k.MarshalKeyFile(time.Now())
		data, err = SealKeyFile(plain, rs)
		clear(plain)
	default:
		data, err = keyFileBytes(k, passphrase)
	}
	if err != nil {
		return err
	}
	defer clear(data)
	if err := fsutil.WriteFile(dir, name, tmp, data, nil); err != nil {
		return fmt.Errorf("keyring: writing %s: %w", path, err)
	}
	return nil
}

// tempKeyFile is the temp file ReplaceKeyFile writes next to path.
func tempKeyFile(path string) (dir, name, tmp string) {
	dir, name = filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	return dir, name, "." + name + ".tmp-0"
}

// TempKeyFile returns the path of the temp file that ReplaceKeyFile writes
// next to path.
func TempKeyFile(path string) string {
	dir, _, tmp := tempKeyFile(path)
	return filepath.Join(dir, tmp)
}

// RemoveTempKeyFile removes the temp file that a ReplaceKeyFile killed
// mid-write left next to path: it holds secret keys. The caller must keep
// other writers of path out (rekey holds path+".lock").
func RemoveTempKeyFile(path string) error {
	dir, _, tmp := tempKeyFile(path)
	if err := os.Remove(filepath.Join(dir, tmp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keyring: removing a leftover temp key file: %w", err)
	}
	return nil
}

// WriteKeyFile writes k in the key file format to w (as age-keygen writes
// to standard output), protected with passphrase unless it is empty.
func WriteKeyFile(w io.Writer, k *Keyring, passphrase string) error {
	data, err := keyFileBytes(k, passphrase)
	if err != nil {
		return err
	}
	defer clear(data)
	_, err = w.Write(data)
	return err
}

// keyFileBytes is k's key file, protected with passphrase unless it is
// empty.
func keyFileBytes(k *Keyring, passphrase string) ([]byte, error) {
	data := k.MarshalKeyFile(time.Now())
	if passphrase == "" {
		return data, nil
	}
	defer clear(data)
	return EncryptKeyFile(data, passphrase)
}

func isWindows() bool { return os.PathSeparator == '\\' }
