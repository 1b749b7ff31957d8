package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/plugin"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// KeyFileEnv names the variable holding the default key file's path.
const KeyFileEnv = "SESSIONSTORE_KEY_FILE"

// RecipientsSuffix names, after a key file's path, its optional file of
// extra recipients.
const RecipientsSuffix = ".recipients"

// maxKeyFileSize bounds a key file: a few identities, never megabytes.
const maxKeyFileSize = 1 << 20

// The lines that mark, atop a key file, Rotating and Staged.
const (
	rotationMarker = "# rotation in progress: the first key is new; run rekey again to finish"
	stagedMarker   = "# staged rotation: the last key is new and decrypt-only until rekey -etcd promotes it"
)

// DefaultKeyFile returns the key file used without a key option:
// $SESSIONSTORE_KEY_FILE, else $CREDENTIALS_DIRECTORY/sessionstore.key.
func DefaultKeyFile() (string, error) {
	if p := os.Getenv(KeyFileEnv); p != "" {
		return p, nil
	}
	if d := os.Getenv("CREDENTIALS_DIRECTORY"); d != "" {
		return filepath.Join(d, "sessionstore.key"), nil
	}
	return "", fmt.Errorf("no key file: set $%s or pass WithKeyFile; make one with: rekey -init -key FILE", KeyFileEnv)
}

// ParseKeyring parses an age identity file. Errors never quote it.
func ParseKeyring(r io.Reader) (*Keyring, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: %v", err)
	}
	defer clear(data)
	if len(data) > maxKeyFileSize {
		return nil, errors.New("keyring: key file is too long")
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("keyring: %s", ageParseError("key file", err))
	}
	k, err := NewKeyring(ids...)
	if err != nil {
		return nil, err
	}
	for line := range strings.Lines(string(data)) {
		switch strings.TrimSpace(line) {
		case rotationMarker:
			k.rotating = true
		case stagedMarker:
			k.staged = k.Len() > 1
		}
	}
	return k, nil
}

// ageParseError rewords an error of age.ParseIdentities or ParseRecipients
// about a file: age's own message can quote a line (a secret key), so only
// its line number is kept.
func ageParseError(file string, err error) string {
	msg := err.Error()
	if line, _, ok := strings.Cut(strings.TrimPrefix(msg, "error at "), ":"); ok && strings.HasPrefix(msg, "error at line ") {
		return line + " of the " + file + " is not valid"
	}
	// age's other messages (too long, not UTF-8, nothing found) quote nothing.
	return "the " + file + ": " + msg
}

// parseRecipients parses an age recipients file. One with only comments
// and blank lines holds no recipient and is not an error.
func parseRecipients(data []byte) ([]age.Recipient, error) {
	if eachLine(data, func(int, string) error { return io.EOF }) == nil {
		return nil, nil
	}
	rs, err := age.ParseRecipients(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("recipients: %s", ageParseError("recipients file", err))
	}
	return rs, nil
}

// LoadKeyring reads the key file at path, and the extra recipients in
// path+".recipients" if it exists. It refuses a symlink, a file that is not
// regular or that another user owns, a key file group or others may access
// and a recipients file they may change (sessionstore.ErrInsecurePermissions).
func LoadKeyring(path string) (*Keyring, error) {
	return LoadKeyringWithIdentity(path, nil, KeyIdentity{})
}

// ReadKeyFiles is LoadKeyring's reading, checks included, without the
// parsing; recipData is nil without a recipients file.
func ReadKeyFiles(path string) (keyData, recipData []byte, err error) {
	keyData, err = readChecked(path, "key file", fsutil.CheckPrivateFile)
	if err != nil {
		return nil, nil, err
	}
	// The recipients file decides who can read new records: others may
	// read it, not change it.
	recipData, err = readChecked(path+RecipientsSuffix, "recipients file", fsutil.CheckTrustedFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		clear(keyData)
		return nil, nil, err
	}
	return keyData, recipData, nil
}

func readChecked(path, what string, check func(string, fs.FileInfo) error) ([]byte, error) {
	data, _, err := fsutil.ReadRegularChecked(path, maxKeyFileSize, func(fi fs.FileInfo) error { return check(path, fi) })
	switch {
	case errors.Is(err, sessionstore.ErrInsecurePermissions): // the check's
		return nil, fmt.Errorf("keyring: %s %w", what, err)
	case errors.Is(err, fsutil.ErrSymlink):
		return nil, fmt.Errorf("keyring: %s %s is a symlink, not followed: %w", what, path, sessionstore.ErrInsecurePermissions)
	case errors.Is(err, fsutil.ErrTooLarge):
		return nil, fmt.Errorf("keyring: %s %s is too long", what, path)
	case err != nil:
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return data, nil
}

// OpenKeyFiles is LoadKeyringWithIdentity's parsing of what ReadKeyFiles
// read; path only names the files in errors.
func OpenKeyFiles(path string, keyData, recipData []byte, passphrase func() (string, error), id KeyIdentity) (*Keyring, error) {
	if isEncryptedKeyFile(keyData) {
		plain, err := openProtected(keyData, passphrase, id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer clear(plain)
		keyData = plain
	}
	k, err := ParseKeyring(bytes.NewReader(keyData))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rs, err := parseRecipients(recipData)
	if err == nil {
		k, err = k.WithRecipients(rs...)
	}
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", path, RecipientsSuffix, err)
	}
	return k, nil
}

// MarshalKeyFile returns k in age-keygen's format, the primary first.
func (k *Keyring) MarshalKeyFile(created time.Time) []byte {
	var b bytes.Buffer
	if k.rotating {
		b.WriteString(rotationMarker + "\n")
	}
	if k.staged {
		b.WriteString(stagedMarker + "\n")
	}
	for i, id := range k.ids {
		switch {
		case i == 0:
			fmt.Fprintf(&b, "# created: %s\n", created.Format(time.RFC3339))
		case k.staged && i == len(k.ids)-1:
			fmt.Fprintf(&b, "\n# staged: the next primary (created: %s), decrypt-only until promoted\n", created.Format(time.RFC3339))
		default:
			b.WriteString("\n# decrypt-only: an older key, kept until every record is resealed\n")
		}
		fmt.Fprintf(&b, "# public key: %s\n%s\n", k.PublicKey(i), secret(id))
	}
	return b.Bytes()
}

// CreateKeyFile writes k to a new key file at path, mode 0600. It refuses
// to overwrite an existing file.
func CreateKeyFile(path string, k *Keyring) error {
	return CreateKeyFileWithPassphrase(path, k, "")
}

// CreateKeyFileWithPassphrase is CreateKeyFile, protecting the file with
// passphrase ("age -p -a") unless it is empty.
func CreateKeyFileWithPassphrase(path string, k *Keyring, passphrase string) error {
	data, err := keyFileBytes(k, passphrase, nil)
	if err != nil {
		return err
	}
	defer clear(data)
	return createKeyFile(path, data)
}

// CreateSealedKeyFile is CreateKeyFile, sealing the file to recipients
// ("age -a -r"; plugins get ui, nil for DefaultPluginUI), which it lists
// in path+SealedToSuffix for ReplaceKeyFile.
func CreateSealedKeyFile(path string, k *Keyring, recipients []string, ui *plugin.ClientUI) error {
	list := []byte(strings.Join(recipients, "\n") + "\n")
	rs, err := parseSealRecipients(list, ui)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	data, err := keyFileBytes(k, "", rs)
	if err != nil {
		return err
	}
	if err := createKeyFile(path, data); err != nil {
		return err
	}
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
	if runtime.GOOS != "windows" {
		err = f.Chmod(0o600) // whatever the umask
	}
	if err == nil {
		_, err = f.Write(data)
	}
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
// k, through TempKeyFile(path). The caller keeps other writers out.
func ReplaceKeyFile(path string, k *Keyring) error {
	return ReplaceKeyFileWithPassphrase(path, k, "")
}

// ReplaceKeyFileWithPassphrase is ReplaceKeyFile, protecting the file with
// passphrase unless it is empty, or sealing it to the recipients in
// path+SealedToSuffix if that exists (their plugins run before any write).
func ReplaceKeyFileWithPassphrase(path string, k *Keyring, passphrase string) error {
	rs, err := readSealedTo(path)
	if err != nil {
		return err
	}
	if rs != nil && passphrase != "" {
		return fmt.Errorf("keyring: %s is sealed to the recipients in %s%s: it takes no passphrase", path, path, SealedToSuffix)
	}
	data, err := keyFileBytes(k, passphrase, rs)
	if err != nil {
		return err
	}
	defer clear(data)
	tmp := TempKeyFile(path)
	if err := fsutil.WriteFile(filepath.Dir(tmp), filepath.Base(path), filepath.Base(tmp), data, nil); err != nil {
		return fmt.Errorf("keyring: writing %s: %w", path, err)
	}
	return nil
}

// TempKeyFile returns the temp file ReplaceKeyFile writes next to path.
func TempKeyFile(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-0")
}

// RemoveTempKeyFile removes the temp file (secret keys) that a killed
// ReplaceKeyFile left. The caller keeps other writers out.
func RemoveTempKeyFile(path string) error {
	if err := os.Remove(TempKeyFile(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keyring: removing a leftover temp key file: %w", err)
	}
	return nil
}

// WriteKeyFile writes k's key file to w, protected with passphrase unless
// it is empty.
func WriteKeyFile(w io.Writer, k *Keyring, passphrase string) error {
	data, err := keyFileBytes(k, passphrase, nil)
	if err != nil {
		return err
	}
	defer clear(data)
	_, err = w.Write(data)
	return err
}

// keyFileBytes is k's key file, protected as protect does, if asked.
func keyFileBytes(k *Keyring, passphrase string, rs []age.Recipient) ([]byte, error) {
	data := k.MarshalKeyFile(time.Now())
	if rs == nil && passphrase == "" {
		return data, nil
	}
	defer clear(data)
	return protect(data, passphrase, rs)
}
