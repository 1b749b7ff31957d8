package crypto

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"unicode/utf8"

	"filippo.io/age"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// RecipientsSuffix is appended to a key file's path to name its optional
// file of extra recipients.
const RecipientsSuffix = ".recipients"

// maxKeyFileSize bounds what LoadKeyring reads: a key file holds a few
// identities, never megabytes.
const maxKeyFileSize = 1 << 20

// A Keyring holds age identities in key-file order, the first being the
// primary, and the extra recipients every record is also sealed to.
//
// A Keyring is immutable and safe for concurrent use.
type Keyring struct {
	ids     []age.Identity
	secrets []string        // ids[i]'s encoding, for the key file
	recips  []age.Recipient // recips[i] is ids[i]'s recipient
	extra   []age.Recipient // sealed to as well as the primary

	// rotating marks a key file written by step 1 of a rotation that has
	// not finished: a rerun reuses its primary instead of adding another.
	rotating bool

	// staged marks a key file whose last identity is staged: new, held
	// decrypt-only by every host until a fleet rotation promotes it.
	staged bool

	// fps holds the fingerprints of recips, computed once, on first use.
	// Copies share it: their identities are a prefix of these.
	fps *fingerprintCache
}

type fingerprintCache struct {
	once   sync.Once
	recips []age.Recipient // of the keyring that made the cache
	v      []string
}

// rotationMarker is the comment line that marks a rotation in progress at
// the top of a key file.
const rotationMarker = "# rotation in progress: the first key is new; run rekey again to finish"

// stagedMarker is the comment line that marks the last identity of a key
// file as staged (fleet rotation, step 1).
const stagedMarker = "# staged rotation: the last key is new and decrypt-only until rekey -etcd promotes it"

// NewKeyring returns a Keyring of the given identities, the first being the
// primary. Each must be an *age.X25519Identity or an *age.HybridIdentity.
func NewKeyring(ids ...age.Identity) (*Keyring, error) {
	if len(ids) == 0 {
		return nil, errors.New("keyring: no identity")
	}
	k := &Keyring{}
	for _, id := range ids {
		var secret string
		var r age.Recipient
		switch id := id.(type) {
		case *age.X25519Identity:
			secret, r = id.String(), id.Recipient()
		case *age.HybridIdentity:
			secret, r = id.String(), id.Recipient()
		default:
			return nil, fmt.Errorf("keyring: unsupported identity type %T", id)
		}
		k.ids = append(k.ids, id)
		k.secrets = append(k.secrets, secret)
		k.recips = append(k.recips, r)
	}
	k.fps = &fingerprintCache{recips: k.recips}
	return k, nil
}

// A Kind is the kind of an identity: classic X25519, or the post-quantum
// ML-KEM-768+X25519 hybrid. Extra recipients must be of the primary's
// kind: age cannot mix them.
type Kind int

const (
	// SameKind, the zero value, asks a rotation for a new primary of the
	// current primary's kind.
	SameKind Kind = iota
	X25519
	PostQuantum
)

func (k Kind) String() string {
	switch k {
	case X25519:
		return "X25519"
	case PostQuantum:
		return "post-quantum"
	case SameKind:
		return "the current primary's kind"
	}
	return fmt.Sprintf("crypto.Kind(%d)", int(k))
}

// KindOf returns the kind of identity i (0 is the primary).
func (k *Keyring) KindOf(i int) Kind {
	if _, ok := k.ids[i].(*age.HybridIdentity); ok {
		return PostQuantum
	}
	return X25519
}

// GenerateKeyring returns a Keyring with one new identity: the
// post-quantum hybrid kind if pq, X25519 otherwise.
func GenerateKeyring(pq bool) (*Keyring, error) {
	id, err := GenerateIdentity(pq)
	if err != nil {
		return nil, err
	}
	return NewKeyring(id)
}

// GenerateIdentity returns a new identity: the post-quantum hybrid kind if
// pq, X25519 otherwise.
func GenerateIdentity(pq bool) (age.Identity, error) {
	if pq {
		return age.GenerateHybridIdentity()
	}
	return age.GenerateX25519Identity()
}

// ParseKeyring parses an age identity file. Error messages never quote
// the file: they say what is wrong and on which line.
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
		// Never wrap age's error: it can quote a line of the file, which
		// may hold a secret key.
		return nil, fmt.Errorf("keyring: %s", lineProblem(data, "key file", "identities", parseIdentity))
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

// Rotating reports whether k comes from a key file that a rotation left
// unfinished (its first identity is the new primary).
func (k *Keyring) Rotating() bool { return k.rotating }

// WithRotating returns k marked (or not) as a rotation in progress; its key
// file says so in a comment.
func (k *Keyring) WithRotating(rotating bool) *Keyring {
	c := *k
	c.rotating = rotating
	return &c
}

// Staged reports whether k's last identity is a staged one: added by
// Stage, decrypt-only until Promote makes it the primary.
func (k *Keyring) Staged() bool { return k.staged }

// Stage returns k with id added after every identity, decrypt-only, and
// marked as staged (its key file says so in a comment): step 1 of a
// rotation across hosts, which every host must hold before it becomes the
// primary. It refuses an identity already in k, and one whose kind the
// extra recipients cannot follow once it is promoted.
func (k *Keyring) Stage(id age.Identity) (*Keyring, error) {
	n, err := NewKeyring(id)
	if err != nil {
		return nil, err
	}
	for _, s := range k.secrets {
		if s == n.secrets[0] {
			return nil, errors.New("keyring: that identity is already in the keyring")
		}
	}
	staged, err := NewKeyring(append(k.Identities(), id)...)
	if err != nil {
		return nil, err
	}
	if staged, err = staged.WithRecipients(k.extra...); err != nil {
		return nil, err
	}
	if _, err := staged.Promote(); err != nil {
		return nil, err
	}
	staged.staged = true
	return staged, nil
}

// Promote returns the keyring a staged k becomes when its staged identity
// (the last) is made the primary: that identity first, the others after it,
// decrypt-only. It keeps k's extra recipients, which must be of the staged
// identity's kind.
func (k *Keyring) Promote() (*Keyring, error) {
	if len(k.ids) < 2 {
		return nil, errors.New("keyring: no staged identity to promote")
	}
	return k.Rotate(k.ids[len(k.ids)-1])
}

// LoadKeyring reads the age identity file at path, and the extra recipients
// in path+".recipients" if that file exists. It refuses a key file that is
// not a regular file, is accessible by group or others, or is owned by
// another user (sessionstore.ErrInsecurePermissions).
func LoadKeyring(path string) (*Keyring, error) {
	keyData, recipData, err := ReadKeyFiles(path)
	if err != nil {
		return nil, err
	}
	return ParseKeyFiles(path, keyData, recipData)
}

// ReadKeyFiles reads the key file at path after checking its permissions,
// and path+".recipients" (nil if it does not exist). It is LoadKeyring
// without the parsing, for callers that detect changes by content.
func ReadKeyFiles(path string) (keyData, recipData []byte, err error) {
	keyData, err = readChecked(path, "key file", fsutil.CheckPrivateFile)
	if err != nil {
		return nil, nil, err
	}
	// The recipients file decides who can read every new record: it is
	// trusted only as the key file is (others may read it, not change it).
	recipData, err = readChecked(path+RecipientsSuffix, "recipients file", fsutil.CheckTrustedFile)
	if errors.Is(err, fs.ErrNotExist) {
		return keyData, nil, nil
	}
	if err != nil {
		clear(keyData)
		return nil, nil, err
	}
	return keyData, recipData, nil
}

// readChecked reads path without following a symlink or blocking on a
// FIFO, after check accepts the file it opened.
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

// ParseKeyFiles parses the contents read by ReadKeyFiles; path is only
// used in error messages.
func ParseKeyFiles(path string, keyData, recipData []byte) (*Keyring, error) {
	if IsEncryptedKeyFile(keyData) {
		return nil, fmt.Errorf("keyring: %s: %w", path, ErrPassphraseRequired)
	}
	k, err := ParseKeyring(bytes.NewReader(keyData))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if recipData == nil {
		return k, nil
	}
	rs, err := ParseRecipients(bytes.NewReader(recipData))
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", path, RecipientsSuffix, err)
	}
	k, err = k.WithRecipients(rs...)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", path, RecipientsSuffix, err)
	}
	return k, nil
}

// ParseRecipients parses an age recipients file (one age1… per line, #
// comments). An empty file, or one with only comments, holds no recipient
// and is not an error.
func ParseRecipients(r io.Reader) ([]age.Recipient, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize))
	if err != nil {
		return nil, err
	}
	empty := true
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			empty = false
			break
		}
	}
	if empty {
		return nil, nil
	}
	rs, err := age.ParseRecipients(bytes.NewReader(data))
	if err != nil {
		// age's error quotes the line; say what is wrong in our words.
		return nil, fmt.Errorf("recipients: %s", lineProblem(data, "recipients file", "recipients", parseRecipient))
	}
	return rs, nil
}

// lineProblem says why age refused data, a file of one identity (or
// recipient: what, in the plural) per line, in words of its own: the line
// number and the kind of problem, never the line. parse parses one line as
// age does and says what it should have been if it fails.
func lineProblem(data []byte, file, what string, parse func(string) (string, bool)) string {
	sc := bufio.NewScanner(bytes.NewReader(data)) // as age reads the file
	n, found := 0, false
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !utf8.ValidString(line) {
			return fmt.Sprintf("line %d of the %s is not valid UTF-8", n, file)
		}
		if want, ok := parse(line); !ok {
			return fmt.Sprintf("line %d of the %s is not %s", n, file, want)
		}
		found = true
	}
	switch {
	case sc.Err() != nil:
		return fmt.Sprintf("line %d of the %s is too long", n+1, file)
	case !found:
		return fmt.Sprintf("no %s in the %s", what, file)
	}
	return fmt.Sprintf("the %s is not a valid file of age %s", file, what)
}

// parseIdentity parses one line of an identity file as age does; if it
// fails, want says what the line should have been.
func parseIdentity(line string) (want string, ok bool) {
	var err error
	switch {
	case strings.HasPrefix(line, "AGE-SECRET-KEY-1"):
		_, err = age.ParseX25519Identity(line)
		want = "a valid X25519 secret key"
	case strings.HasPrefix(line, "AGE-SECRET-KEY-PQ-1"):
		_, err = age.ParseHybridIdentity(line)
		want = "a valid post-quantum secret key"
	default:
		return "an age secret key, a comment (#) or empty", false
	}
	return want, err == nil
}

// parseRecipient parses one line of a recipients file as age does; if it
// fails, want says what the line should have been.
func parseRecipient(line string) (want string, ok bool) {
	var err error
	switch {
	case strings.HasPrefix(line, "age1pq1"):
		_, err = age.ParseHybridRecipient(line)
		want = "a valid post-quantum recipient (age1pq1…)"
	case strings.HasPrefix(line, "age1"):
		_, err = age.ParseX25519Recipient(line)
		want = "a valid X25519 recipient (age1…)"
	default:
		return "an age recipient (age1…), a comment (#) or empty", false
	}
	return want, err == nil
}

// WithRecipients returns a copy of k that also seals to rs. Each must be of
// the primary's kind: age cannot mix post-quantum and classic recipients.
func (k *Keyring) WithRecipients(rs ...age.Recipient) (*Keyring, error) {
	pq := k.PostQuantum()
	// The recipients are named by position, never quoted: they may come
	// from a file, whose bytes no error repeats.
	for i, r := range rs {
		switch r.(type) {
		case *age.X25519Recipient:
			if pq {
				return nil, fmt.Errorf("recipients: recipient %d of %d is a classic X25519 recipient but the primary key is post-quantum; age cannot mix them (make break-glass keys of the primary's kind)", i+1, len(rs))
			}
		case *age.HybridRecipient:
			if !pq {
				return nil, fmt.Errorf("recipients: recipient %d of %d is a post-quantum recipient but the primary key is classic X25519; age cannot mix them (make break-glass keys of the primary's kind)", i+1, len(rs))
			}
		}
	}
	c := *k
	c.extra = append(append([]age.Recipient(nil), k.extra...), rs...)
	return &c, nil
}

// Primary returns the identity new records are sealed to.
func (k *Keyring) Primary() age.Identity { return k.ids[0] }

// Recipient returns the primary's recipient.
func (k *Keyring) Recipient() age.Recipient { return k.recips[0] }

// Identities returns the identities in key-file order, the primary first.
func (k *Keyring) Identities() []age.Identity { return append([]age.Identity(nil), k.ids...) }

// ExtraRecipients returns the recipients sealed to besides the primary.
func (k *Keyring) ExtraRecipients() []age.Recipient {
	return append([]age.Recipient(nil), k.extra...)
}

// Recipients returns every recipient a new record is sealed to: the
// primary's first, then the extra recipients.
func (k *Keyring) Recipients() []age.Recipient {
	return append([]age.Recipient{k.recips[0]}, k.extra...)
}

// PostQuantum reports whether the primary is a post-quantum hybrid identity.
func (k *Keyring) PostQuantum() bool {
	_, ok := k.ids[0].(*age.HybridIdentity)
	return ok
}

// PublicKey returns the recipient string of identity i (0 is the primary).
func (k *Keyring) PublicKey(i int) string { return fmt.Sprint(k.recips[i]) }

// Fingerprint returns a short, public name of identity i (0 is the
// primary): "sha256:" and the first 16 bytes, in hex, of the SHA-256 of
// its recipient string. Hosts publish the fingerprints of their keys so
// that a rotation can check who holds which key without seeing one.
func (k *Keyring) Fingerprint(i int) string { return k.fingerprints()[i] }

// Fingerprints returns the fingerprints of every identity, the primary
// first.
func (k *Keyring) Fingerprints() []string { return append([]string(nil), k.fingerprints()...) }

// fingerprints computes the fingerprints once per keyring and its copies.
func (k *Keyring) fingerprints() []string {
	c := k.fps
	c.once.Do(func() {
		c.v = make([]string, len(c.recips))
		for i, r := range c.recips {
			sum := sha256.Sum256([]byte(fmt.Sprint(r)))
			c.v[i] = "sha256:" + hex.EncodeToString(sum[:16])
		}
	})
	return c.v[:len(k.ids)]
}

// Len returns the number of identities.
func (k *Keyring) Len() int { return len(k.ids) }

// Rotate returns a keyring whose primary is newPrimary, keeping k's
// identities after it as decrypt-only, and k's extra recipients. An
// identity already in k is not repeated.
func (k *Keyring) Rotate(newPrimary age.Identity) (*Keyring, error) {
	ids := []age.Identity{newPrimary}
	n, err := NewKeyring(newPrimary)
	if err != nil {
		return nil, err
	}
	for i, id := range k.ids {
		if k.secrets[i] != n.secrets[0] {
			ids = append(ids, id)
		}
	}
	r, err := NewKeyring(ids...)
	if err != nil {
		return nil, err
	}
	return r.WithRecipients(k.extra...)
}

// PrimaryOnly returns a keyring holding only k's primary, with k's extra
// recipients: what remains once old keys are retired.
func (k *Keyring) PrimaryOnly() *Keyring {
	c := *k
	c.ids, c.secrets, c.recips = k.ids[:1:1], k.secrets[:1:1], k.recips[:1:1]
	c.rotating, c.staged = false, false
	return &c
}
