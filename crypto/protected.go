package crypto

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	"filippo.io/age"
	"filippo.io/age/armor"
	"filippo.io/age/plugin"

	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// KeyIdentityEnv names the variable holding the default identity file.
const KeyIdentityEnv = "SESSIONSTORE_KEY_IDENTITY"

// SealedToSuffix names, after a sealed key file's path, the (public) list
// of the recipients it is sealed to, one per line.
const SealedToSuffix = ".sealed-to"

// KeyFileWorkFactor is the scrypt work factor (log2 N) of a passphrase
// protecting a key file: age's default. Tests lower it.
var KeyFileWorkFactor = 18

// maxKeyFileWorkFactor is the highest one opened: age's. Fuzz tests lower it.
var maxKeyFileWorkFactor = 22

// ErrPassphraseRequired: a passphrase-protected key file, no passphrase.
var ErrPassphraseRequired = errors.New("key file is passphrase-protected: a passphrase is required")

// ErrIdentityRequired: a key file sealed to recipients, no identity file.
var ErrIdentityRequired = errors.New("key file is sealed to age recipients: an identity file is required")

// ErrPlugin is returned (wrapped) when an age plugin is missing, fails or
// refuses; the message names the plugin and says what to do.
var ErrPlugin = errors.New("age plugin")

// A KeyIdentity says how to open a key file sealed to age recipients.
type KeyIdentity struct {
	File string           // an age identity file; "" means $SESSIONSTORE_KEY_IDENTITY
	UI   *plugin.ClientUI // a plugin's prompts; nil means DefaultPluginUI
}

// DefaultPluginUI is plugins' UI unless the caller sets one: messages on
// standard error, and prompts (a PIN) only if it is a terminal.
func DefaultPluginUI() *plugin.ClientUI {
	printf := func(format string, v ...any) { fmt.Fprintf(os.Stderr, "sessionstore: "+format+"\n", v...) }
	ui := plugin.NewTerminalUI(printf, printf)
	if fi, err := os.Stderr.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		ui.RequestValue, ui.Confirm = nil, nil // the plugin is told the prompt failed
	}
	return ui
}

// LoadKeyringWithPassphrase is LoadKeyring for a key file that may be
// passphrase-protected: passphrase is called, once, only if it is (nil:
// ErrPassphraseRequired).
func LoadKeyringWithPassphrase(path string, passphrase func() (string, error)) (*Keyring, error) {
	return LoadKeyringWithIdentity(path, passphrase, KeyIdentity{})
}

// LoadKeyringWithIdentity is LoadKeyringWithPassphrase for a key file that
// may also be sealed to age recipients, opened with id's identity file
// (none: ErrIdentityRequired). A plugin runs once per process for the same
// bytes and identity file. Errors never quote either file.
func LoadKeyringWithIdentity(path string, passphrase func() (string, error), id KeyIdentity) (*Keyring, error) {
	keyData, recipData, err := ReadKeyFiles(path)
	if err != nil {
		return nil, err
	}
	defer clear(keyData)
	return OpenKeyFiles(path, keyData, recipData, passphrase, id)
}

// isEncryptedKeyFile reports whether data is an age file, binary or
// armored: a key file protected with a passphrase or sealed to recipients.
func isEncryptedKeyFile(data []byte) bool {
	return bytes.HasPrefix(data, []byte("age-encryption.org/v1\n")) ||
		bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(armor.Header))
}

// ageReader reads the age file data, armored or not.
func ageReader(data []byte) io.Reader {
	if bytes.HasPrefix(data, []byte("age-encryption.org/v1\n")) {
		return bytes.NewReader(data)
	}
	return armor.NewReader(bytes.NewReader(data))
}

// IsSealedKeyFile reports whether data is a key file sealed to age
// recipients: an age file without a passphrase (scrypt) stanza.
func IsSealedKeyFile(data []byte) bool {
	if !isEncryptedKeyFile(data) {
		return false
	}
	hdr, err := age.ExtractHeader(ageReader(data))
	return err == nil && !bytes.Contains(hdr, []byte("\n-> scrypt "))
}

// protect encrypts a key file's contents, armored, to recipients ("age -a
// -r"; plugin recipients run their plugin), or to passphrase if there are
// none ("age -p -a").
func protect(plain []byte, passphrase string, recipients []age.Recipient) ([]byte, error) {
	if recipients == nil {
		r, err := age.NewScryptRecipient(passphrase)
		if err != nil {
			return nil, fmt.Errorf("keyring: %v", err)
		}
		r.SetWorkFactor(KeyFileWorkFactor)
		recipients = []age.Recipient{r}
	}
	var out bytes.Buffer
	aw := armor.NewWriter(&out)
	w, err := age.Encrypt(aw, recipients...)
	if err == nil {
		_, err = w.Write(plain)
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = aw.Close()
	}
	if err != nil {
		return nil, pluginErr("seal the key file", pluginNames(recipients), err)
	}
	return out.Bytes(), nil
}

// unsealCache holds the key files this process unsealed, by the digests of
// the sealed file and of the identity file: a plugin runs once per process.
var unsealCache struct {
	sync.Mutex // also held while a plugin runs: one prompt at a time
	m          map[[2][sha256.Size]byte][]byte
}

// openProtected decrypts a key file with a passphrase or with id.
func openProtected(data []byte, passphrase func() (string, error), id KeyIdentity) ([]byte, error) {
	if !IsSealedKeyFile(data) {
		if passphrase == nil {
			return nil, fmt.Errorf("keyring: %w (use WithPassphrase)", ErrPassphraseRequired)
		}
		p, err := passphrase()
		if err != nil {
			return nil, fmt.Errorf("keyring: passphrase: %w", err)
		}
		sid, err := age.NewScryptIdentity(p)
		if err != nil {
			return nil, fmt.Errorf("keyring: %v", err) // only ever "passphrase can't be empty"
		}
		sid.SetMaxWorkFactor(maxKeyFileWorkFactor)
		return decryptKeyFile(data, "passphrase-protected key file", "wrong passphrase for the key file", sid)
	}
	file := id.File
	if file == "" {
		file = os.Getenv(KeyIdentityEnv)
	}
	if file == "" {
		return nil, fmt.Errorf("keyring: %w (use WithKeyIdentity, -identity or $%s)", ErrIdentityRequired, KeyIdentityEnv)
	}
	idData, err := readIdentityFile(file)
	if err != nil {
		return nil, err
	}
	defer clear(idData)
	key := [2][sha256.Size]byte{sha256.Sum256(data), sha256.Sum256(idData)}
	unsealCache.Lock()
	defer unsealCache.Unlock()
	if plain, ok := unsealCache.m[key]; ok {
		return bytes.Clone(plain), nil
	}
	ui := id.UI
	if ui == nil {
		ui = DefaultPluginUI()
	}
	ids, err := parseIdentityFile(file, idData, ui)
	if err != nil {
		return nil, err
	}
	plain, err := decryptKeyFile(data, "sealed key file", "no identity in "+file+" opens the key file: it is sealed to other recipients", ids...)
	if err != nil {
		return nil, err
	}
	if len(unsealCache.m) >= 8 || unsealCache.m == nil { // a new key file after each rotation
		unsealCache.m = make(map[[2][sha256.Size]byte][]byte)
	}
	unsealCache.m[key] = bytes.Clone(plain)
	return plain, nil
}

// decryptKeyFile decrypts the age file data, what in errors, with ids;
// noMatch says that none of them opens it. Errors never wrap age's or
// armor's, which can quote the file.
func decryptKeyFile(data []byte, what, noMatch string, ids ...age.Identity) ([]byte, error) {
	r, err := age.Decrypt(ageReader(data), ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, errors.New("keyring: " + noMatch)
		}
		if perr := pluginErr("open the key file", pluginNames(ids), err); errors.Is(perr, ErrPlugin) {
			return nil, perr
		}
		if what == "sealed key file" {
			return nil, errors.New("keyring: sealed key file: its age header is malformed or altered")
		}
		return nil, fmt.Errorf("keyring: %s: its age header is malformed or altered (or asks for an scrypt work factor above 2^%d)", what, maxKeyFileWorkFactor)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize+1))
	if err != nil {
		clear(plain)
		return nil, fmt.Errorf("keyring: %s: its content is altered or truncated", what)
	}
	if len(plain) > maxKeyFileSize {
		return nil, errors.New("keyring: key file is too long")
	}
	return plain, nil
}

// readSealedTo returns the recipients in path+SealedToSuffix, nil without
// it. It decides who can open the key file: trusted like a recipients file.
func readSealedTo(path string) ([]age.Recipient, error) {
	text, err := readChecked(path+SealedToSuffix, "seal-to file", fsutil.CheckTrustedFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rs, err := parseSealRecipients(text, nil)
	if err != nil {
		return nil, fmt.Errorf("keyring: %s%s: %w", path, SealedToSuffix, err)
	}
	return rs, nil
}

// parseSealRecipients parses native and plugin recipients, one per line;
// plugins get ui (nil: DefaultPluginUI). Errors never quote a line.
func parseSealRecipients(text []byte, ui *plugin.ClientUI) ([]age.Recipient, error) {
	if ui == nil {
		ui = DefaultPluginUI()
	}
	var rs []age.Recipient
	err := eachLine(text, func(n int, line string) error {
		if !utf8.ValidString(line) || !strings.HasPrefix(line, "age1") {
			// Perhaps a secret key pasted in the wrong place: never quote it.
			return fmt.Errorf("recipient on line %d: not an age recipient (age1…)", n)
		}
		if native, err := age.ParseRecipients(strings.NewReader(line)); err == nil {
			rs = append(rs, native...)
			return nil
		}
		r, err := plugin.NewRecipient(line, ui)
		if err != nil {
			return fmt.Errorf("recipient on line %d: malformed age recipient", n)
		}
		rs = append(rs, r)
		return nil
	})
	if err == nil && len(rs) == 0 {
		err = errors.New("no recipients")
	}
	return rs, err
}

// eachLine calls fn with each line of text (and its number) that is
// neither blank nor a "#" comment, trimmed, until fn fails.
func eachLine(text []byte, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			if err := fn(n, line); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}

// readIdentityFile reads an identity file: a few identities or stubs. Like
// age's -i file it may be a symlink, but what it leads to must be a regular
// file, refused without blocking (never a FIFO's open).
func readIdentityFile(file string) ([]byte, error) {
	path, err := filepath.EvalSymlinks(file)
	var data []byte
	if err == nil {
		data, _, err = fsutil.ReadRegularChecked(path, 64<<10, nil)
	}
	switch {
	case errors.Is(err, fsutil.ErrNotRegular):
		return nil, fmt.Errorf("keyring: identity file %s is not a regular file", file)
	case errors.Is(err, fsutil.ErrTooLarge):
		return nil, fmt.Errorf("keyring: identity file %s is too long", file)
	case err != nil:
		return nil, fmt.Errorf("keyring: identity file: %w", err)
	}
	return data, nil
}

// parseIdentityFile parses an identity file of native and plugin
// identities. Errors never quote a line.
func parseIdentityFile(file string, data []byte, ui *plugin.ClientUI) ([]age.Identity, error) {
	var ids []age.Identity
	err := eachLine(data, func(n int, line string) error {
		if strings.HasPrefix(line, "AGE-PLUGIN-") {
			p, err := plugin.NewIdentity(line, ui)
			if err != nil {
				return fmt.Errorf("keyring: identity file %s, line %d: malformed plugin identity", file, n)
			}
			ids = append(ids, p)
			return nil
		}
		native, err := age.ParseIdentities(strings.NewReader(line))
		if err != nil {
			return fmt.Errorf("keyring: identity file %s, line %d: not an age identity", file, n)
		}
		ids = append(ids, native...)
		return nil
	})
	if err == nil && len(ids) == 0 {
		err = fmt.Errorf("keyring: identity file %s has no identities", file)
	}
	return ids, err
}

// pluginNames returns the names of the plugins among xs.
func pluginNames[T any](xs []T) (names []string) {
	for _, x := range xs {
		if p, ok := any(x).(interface{ Name() string }); ok {
			names = append(names, p.Name())
		}
	}
	return names
}

// pluginErr turns the failure of one of the plugins names into an error
// wrapping ErrPlugin that names it and says what to do; any other error
// into one that quotes nothing. age reports a plugin's failure as "NAME
// plugin: …", itself (Decrypt) or wrapped once (Encrypt).
func pluginErr(what string, names []string, err error) error {
	var nf *plugin.NotFoundError
	if errors.As(err, &nf) {
		return fmt.Errorf("keyring: %w: age-plugin-%s not found on $PATH: install it (or add its directory to $PATH) to %s", ErrPlugin, nf.Name, what)
	}
	for _, e := range []error{err, errors.Unwrap(err)} {
		for _, name := range names {
			if msg, ok := strings.CutPrefix(fmt.Sprint(e), name+" plugin: "); ok {
				if len(msg) > 200 {
					msg = msg[:200] + "…"
				}
				return fmt.Errorf("keyring: %w: age-plugin-%s failed or refused to %s: %q; check that its device or service is reachable, "+
					"and if it asks for a PIN or a touch, run where standard error is a terminal or pass WithPluginUI", ErrPlugin, name, what, msg)
			}
		}
	}
	return fmt.Errorf("keyring: cannot %s: %v", what, err)
}
