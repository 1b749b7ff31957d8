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
	"strings"
	"sync"
	"unicode/utf8"

	"filippo.io/age"
	"filippo.io/age/armor"
	"filippo.io/age/plugin"
)

// A key file may be an age file sealed to age recipients, usually those
// of plugins that keep their secret in hardware or a KMS
// (age-plugin-yubikey, age-plugin-tpm, …). It is opened with an age
// identity file (for a plugin, its identity stub), and its recipients are
// kept, public, beside it in path+SealedToSuffix, so that every rewrite
// seals to them again.

// KeyIdentityEnv names the environment variable that stores read the
// identity file from when they are given none.
const KeyIdentityEnv = "SESSIONSTORE_KEY_IDENTITY"

// SealedToSuffix names the file, beside a sealed key file, that lists the
// recipients it is sealed to, one per line. It is public.
const SealedToSuffix = ".sealed-to"

// ErrIdentityRequired is returned for a key file sealed to age recipients
// when no identity file was given.
var ErrIdentityRequired = errors.New("key file is sealed to age recipients: an identity file is required")

// ErrPlugin is returned (wrapped) when an age plugin is missing, fails or
// refuses; the message names the plugin and says what to do.
var ErrPlugin = errors.New("age plugin")

// A KeyIdentity says how to open a key file sealed to age recipients.
type KeyIdentity struct {
	File string           // an age identity file; "" means $SESSIONSTORE_KEY_IDENTITY
	UI   *plugin.ClientUI // a plugin's prompts; nil means DefaultPluginUI
}

func (id KeyIdentity) file() string {
	if id.File != "" {
		return id.File
	}
	return os.Getenv(KeyIdentityEnv)
}

func (id KeyIdentity) ui() *plugin.ClientUI {
	if id.UI != nil {
		return id.UI
	}
	return DefaultPluginUI()
}

// DefaultPluginUI is the UI that plugins get unless the caller sets one:
// their messages go to standard error, and they may prompt (a PIN, a
// confirmation) on the terminal only if standard error is one.
func DefaultPluginUI() *plugin.ClientUI {
	printf := func(format string, v ...any) { fmt.Fprintf(os.Stderr, "sessionstore: "+format+"\n", v...) }
	ui := plugin.NewTerminalUI(printf, printf)
	if fi, err := os.Stderr.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		ui.RequestValue, ui.Confirm = nil, nil // the plugin is told the prompt failed
	}
	return ui
}

// IsSealedKeyFile reports whether data is a key file sealed to age
// recipients (not to a passphrase): an age file whose header has no scrypt
// stanza.
func IsSealedKeyFile(data []byte) bool {
	if !IsEncryptedKeyFile(data) {
		return false
	}
	var src io.Reader = bytes.NewReader(data)
	if !bytes.HasPrefix(data, []byte(ageIntro)) {
		src = armor.NewReader(src)
	}
	hdr, err := age.ExtractHeader(src)
	if err != nil {
		return false // left to the passphrase path, which says it is malformed
	}
	return !bytes.Contains(hdr, []byte("\n-> scrypt "))
}

// ParseSealRecipients parses recipients, one per line ("#" comments and
// blank lines ignored): X25519 (age1…), post-quantum (age1pq1…) and plugin
// recipients (age1NAME1…), whose plugins get ui (nil: DefaultPluginUI).
// Errors never quote a line.
func ParseSealRecipients(text []byte, ui *plugin.ClientUI) ([]age.Recipient, error) {
	if ui == nil {
		ui = DefaultPluginUI()
	}
	var rs []age.Recipient
	sc := bufio.NewScanner(bytes.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := parseSealRecipient(line, ui)
		if err != nil {
			return nil, fmt.Errorf("recipient on line %d: %w", n, err)
		}
		rs = append(rs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, errors.New("no recipients")
	}
	return rs, nil
}

func parseSealRecipient(s string, ui *plugin.ClientUI) (age.Recipient, error) {
	switch {
	case !utf8.ValidString(s) || !strings.HasPrefix(s, "age1"):
		// Perhaps a secret key pasted in the wrong place: never quote it.
		return nil, errors.New("not an age recipient (age1…)")
	case strings.HasPrefix(s, "age1pq1"):
		return age.ParseHybridRecipient(s)
	}
	if r, err := age.ParseX25519Recipient(s); err == nil {
		return r, nil
	}
	r, err := plugin.NewRecipient(s, ui)
	if err != nil {
		return nil, errors.New("malformed age recipient")
	}
	return &pluginRecipient{r: r, name: r.Name()}, nil
}

// SealKeyFile seals a key file's contents to recipients (armored), as
// "age -a -R" does. Plugin recipients run their plugin.
func SealKeyFile(plain []byte, recipients []age.Recipient) ([]byte, error) {
	out, err := armorEncrypt(plain, recipients...)
	if err != nil {
		return nil, pluginErr("seal the key file", recipients, nil, err)
	}
	return out, nil
}

// armorEncrypt encrypts plain to recipients, armored, as "age -a" does.
func armorEncrypt(plain []byte, recipients ...age.Recipient) ([]byte, error) {
	var out bytes.Buffer
	aw := armor.NewWriter(&out)
	w, err := age.Encrypt(aw, recipients...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// ReadSealedTo returns the recipients that path's key file is sealed to,
// from path+SealedToSuffix (their plugins get ui, nil for
// DefaultPluginUI); nil if there is no such file.
func ReadSealedTo(path string, ui *plugin.ClientUI) ([]age.Recipient, error) {
	text, err := os.ReadFile(path + SealedToSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	rs, err := ParseSealRecipients(text, ui)
	if err != nil {
		return nil, fmt.Errorf("keyring: %s%s: %w", path, SealedToSuffix, err)
	}
	return rs, nil
}

// unsealCache holds the key files this process unsealed, by the digests
// of the sealed file and of the identity file: a process that opens
// several Stores on one key file runs the plugin once.
var unsealCache struct {
	sync.Mutex // also held while a plugin runs: one prompt at a time
	m          map[unsealKey][]byte
	order      []unsealKey
}

type unsealKey struct{ data, identity [sha256.Size]byte }

// unsealCacheSize bounds unsealCache: a long-lived process sees a new key
// file after each rotation.
const unsealCacheSize = 8

// UnsealKeyFile opens a key file sealed to age recipients with the
// identities in id's identity file, running a plugin only the first time
// this process opens these bytes with this identity file. Errors never
// quote either file.
func UnsealKeyFile(data []byte, id KeyIdentity) ([]byte, error) {
	file := id.file()
	if file == "" {
		return nil, fmt.Errorf("keyring: %w (use WithKeyIdentity, -identity or $%s)", ErrIdentityRequired, KeyIdentityEnv)
	}
	idData, err := readIdentityFile(file)
	if err != nil {
		return nil, err
	}
	defer clear(idData)
	key := unsealKey{sha256.Sum256(data), sha256.Sum256(idData)}
	unsealCache.Lock()
	defer unsealCache.Unlock()
	if plain, ok := unsealCache.m[key]; ok {
		return bytes.Clone(plain), nil
	}
	ids, err := parseIdentityFile(file, idData, id.ui())
	if err != nil {
		return nil, err
	}
	var src io.Reader = bytes.NewReader(data)
	if !bytes.HasPrefix(data, []byte(ageIntro)) {
		src = armor.NewReader(src)
	}
	r, err := age.Decrypt(src, ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("keyring: no identity in %s opens the key file: it is sealed to other recipients", file)
		}
		if perr := pluginErr("open the key file", nil, ids, err); errors.Is(perr, ErrPlugin) {
			return nil, perr
		}
		// Never wrap age's or armor's errors: they can quote the file.
		return nil, errors.New("keyring: sealed key file: its age header is malformed or altered")
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize+1))
	if err != nil {
		clear(plain)
		return nil, errors.New("keyring: sealed key file: its content is altered or truncated")
	}
	if len(plain) > maxKeyFileSize {
		return nil, errors.New("keyring: key file is too long")
	}
	if unsealCache.m == nil {
		unsealCache.m = make(map[unsealKey][]byte)
	}
	if len(unsealCache.order) == unsealCacheSize {
		clear(unsealCache.m[unsealCache.order[0]])
		delete(unsealCache.m, unsealCache.order[0])
		unsealCache.order = unsealCache.order[1:]
	}
	unsealCache.m[key] = bytes.Clone(plain)
	unsealCache.order = append(unsealCache.order, key)
	return plain, nil
}

// maxIdentityFileSize bounds an identity file: a few identities or stubs.
const maxIdentityFileSize = 64 << 10

func readIdentityFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("keyring: identity file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIdentityFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: identity file: %w", err)
	}
	if len(data) > maxIdentityFileSize {
		return nil, fmt.Errorf("keyring: identity file %s is too long", file)
	}
	return data, nil
}

// parseIdentityFile parses an age identity file: native identities
// (AGE-SECRET-KEY-…) and plugin identities (AGE-PLUGIN-NAME-1…). Errors
// never quote a line.
func parseIdentityFile(file string, data []byte, ui *plugin.ClientUI) ([]age.Identity, error) {
	var ids []age.Identity
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "AGE-PLUGIN-") {
			p, err := plugin.NewIdentity(line, ui)
			if err != nil {
				return nil, fmt.Errorf("keyring: identity file %s, line %d: malformed plugin identity", file, n)
			}
			ids = append(ids, &pluginIdentity{id: p, name: p.Name()})
			continue
		}
		native, err := age.ParseIdentities(strings.NewReader(line))
		if err != nil {
			return nil, fmt.Errorf("keyring: identity file %s, line %d: not an age identity", file, n)
		}
		ids = append(ids, native...)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("keyring: identity file %s has no identities", file)
	}
	return ids, nil
}

// pluginIdentity and pluginRecipient keep what their plugin said when it
// failed, so that the error can name the plugin and say what to do.
type pluginIdentity struct {
	id   *plugin.Identity
	name string
	err  error
}

func (p *pluginIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	k, err := p.id.Unwrap(stanzas)
	if err != nil && !errors.Is(err, age.ErrIncorrectIdentity) {
		p.err = err
	}
	return k, err
}

type pluginRecipient struct {
	r    *plugin.Recipient
	name string
	err  error
}

func (p *pluginRecipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	s, _, err := p.WrapWithLabels(fileKey)
	return s, err
}

func (p *pluginRecipient) WrapWithLabels(fileKey []byte) ([]*age.Stanza, []string, error) {
	s, l, err := p.r.WrapWithLabels(fileKey)
	p.err = err
	return s, l, err
}

// pluginErr turns the failure of a plugin among recipients or identities
// into an error wrapping ErrPlugin that names it and says what to do;
// otherwise it returns a generic error that quotes nothing.
func pluginErr(what string, recipients []age.Recipient, identities []age.Identity, err error) error {
	name, perr := "", error(nil)
	for _, r := range recipients {
		if p, ok := r.(*pluginRecipient); ok && p.err != nil {
			name, perr = p.name, p.err
		}
	}
	for _, id := range identities {
		if p, ok := id.(*pluginIdentity); ok && p.err != nil {
			name, perr = p.name, p.err
		}
	}
	if perr == nil {
		return fmt.Errorf("keyring: cannot %s: %v", what, err)
	}
	var nf *plugin.NotFoundError
	if errors.As(perr, &nf) {
		return fmt.Errorf("keyring: %w: age-plugin-%s not found on $PATH: install it (or add its directory to $PATH) to %s", ErrPlugin, name, what)
	}
	// What the plugin said is its own message (no secret of ours): the
	// protocol's error text, trimmed.
	msg := strings.TrimPrefix(perr.Error(), name+" plugin: ")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return fmt.Errorf("keyring: %w: age-plugin-%s failed or refused to %s: %q; check that its device or service is reachable, "+
		"and if it asks for a PIN or a touch, run where standard error is a terminal or pass WithPluginUI", ErrPlugin, name, what, msg)
}
