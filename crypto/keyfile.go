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

// KeyFileEnv names the environment variable that stores read the key
// file's path from when they are given no key.
const KeyFileEnv = "SESSIONSTORE_KEY_FILE"

// RecipientsSuffix is appended to a key file's path to name its optional
// file of extra recipients.
const RecipientsSuffix = ".recipients"

// maxKeyFileSize bounds a key file: a few identities, never megabytes.
const maxKeyFileSize = 1 << 20

// The comment lines that mark, at the top of a key file, a rotation in
// progress and a staged last identity.
const (
	rotationMarker = "# rotation in progress: the first key is new; run rekey again to finish"
	stagedMarker   = "# staged rotation: the last key is new and decrypt-only until rekey -etcd promotes it"
)

// DefaultKeyFile returns the key file that stores (and the commands) use
// without a key option: $SESSIONSTORE_KEY_FILE, else
// $CREDENTIALS_DIRECTORY/sessionstore.key (systemd credentials).
func DefaultKeyFile() (string, error) {
	if p := os.Getenv(KeyFileEnv); p != "" {
		return p, nil
	}
	if d := os.Getenv("CREDENTIALS_DIRECTORY"); d != "" {
		return filepath.Join(d, "sessionstore.key"), nil
	}
	return "", fmt.Errorf("no key file: set $%s or pass WithKeyFile; make one with: rekey -init -key FILE", KeyFileEnv)
}

// ParseKeyring parses an age identity file. Errors never quote the file:
// they say what is wrong and on which line.
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

// LoadKeyring reads the age identity file at path, and the extra recipients
// in path+".recipients" if that file exists. It refuses a key file that is
// not a regular file, is accessible by group or others, or is owned by
// another user (sessionstore.ErrInsecurePermissions). A protected key
// file is opened as LoadKeyringWithIdentity opens it without a passphrase.
func LoadKeyring(path string) (*Keyring, error) {
	return LoadKeyringWithIdentity(path, nil, KeyIdentity{})
}

// ReadKeyFiles reads the key file at path after checking its permissions,
// and path+".recipients" (nil if it does not exist), never through a
// symlink or blocking on a FIFO. It is LoadKeyring without the parsing,
// for callers that detect changes by content.
func ReadKeyFiles(path string) (keyData, recipData []byte, err error) {
	keyData, err = readChecked(path, "key file", fsutil.CheckPrivateFile)
	if err != nil {
		return nil, nil, err
	}
	// The recipients file decides who can read every new record: others
	// may read it, not change it.
	recipData, err = readChecked(path+RecipientsSuffix, "recipients file", fsutil.CheckTrustedFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		clear(keyData)
		return nil, nil, err
	}
	return keyData, recipData, nil
}

func readChecked(path, what string, check func(string, fs.FileInfo) error) ([]byte, error) {
	var checkErr error
	data, _, err := fsutil.ReadRegularChecked(path, maxKeyFileSize, func(fi fs.FileInfo) error {
		checkErr = check(path, fi)
		return checkErr
	})
	switch {
	case checkErr != nil:
		return nil, fmt.Errorf("keyring: %s %w", what, checkErr)
	case errors.Is(err, fsutil.ErrSymlink):
		return nil, fmt.Errorf("keyring: %s %s is a symlink, not followed: %w", what, path, sessionstore.ErrInsecurePermissions)
	case errors.Is(err, fsutil.ErrTooLarge):
		return nil, fmt.Errorf("keyring: %s %s is too long", what, path)
	case err != nil:
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return data, nil
}

// OpenKeyFiles parses a key file and its recipients file as ReadKeyFiles
// read them; path only names them in errors. A protected key file is
// opened first, as LoadKeyringWithIdentity opens it.
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

// MarshalKeyFile returns k in age-keygen's identity file format, the
// primary first, the others marked decrypt-only (or staged).
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
// passphrase (as "age -p -a") unless it is empty.
func CreateKeyFileWithPassphrase(path string, k *Keyring, passphrase string) error {
	data, err := keyFileBytes(k, passphrase, nil)
	if err != nil {
		return err
	}
	defer clear(data)
	return createKeyFile(path, data)
}

// CreateSealedKeyFile is CreateKeyFile, sealing the file to recipients
// (as "age -a -r": X25519, post-quantum or plugin recipients, whose plugins
// get ui, nil for DefaultPluginUI) and writing them, public, beside it in
// path+SealedToSuffix, so that ReplaceKeyFile seals to them again.
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
// k, through the temp file TempKeyFile(path). The caller must keep other
// writers of path out (rekey holds path+".lock").
func ReplaceKeyFile(path string, k *Keyring) error {
	return ReplaceKeyFileWithPassphrase(path, k, "")
}

// ReplaceKeyFileWithPassphrase is ReplaceKeyFile, protecting the file with
// passphrase unless it is empty. A key file with a path+SealedToSuffix
// beside it is sealed to the recipients listed there again (their plugins
// run before anything is written).
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

// TempKeyFile returns the path of the temp file that ReplaceKeyFile writes
// next to path.
func TempKeyFile(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-0")
}

// RemoveTempKeyFile removes the temp file that a ReplaceKeyFile killed
// mid-write left next to path: it holds secret keys. The caller must keep
// other writers of path out.
func RemoveTempKeyFile(path string) error {
	if err := os.Remove(TempKeyFile(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keyring: removing a leftover temp key file: %w", err)
	}
	return nil
}

// WriteKeyFile writes k in the key file format to w (as age-keygen writes
// to standard output), protected with passphrase unless it is empty.
func WriteKeyFile(w io.Writer, k *Keyring, passphrase string) error {
	data, err := keyFileBytes(k, passphrase, nil)
	if err != nil {
		return err
	}
	defer clear(data)
	_, err = w.Write(data)
	return err
}

// keyFileBytes is k's key file, sealed to rs if there are any, else
// protected with passphrase unless it is empty.
func keyFileBytes(k *Keyring, passphrase string, rs []age.Recipient) ([]byte, error) {
	data := k.MarshalKeyFile(time.Now())
	if rs == nil && passphrase == "" {
		return data, nil
	}
	defer clear(data)
	return protect(data, passphrase, rs)
}
