package crypto

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"filippo.io/age"
)

// A Keyring holds age identities in key-file order, the first being the
// primary, and the extra recipients every record is also sealed to. It is
// immutable and safe for concurrent use. No fmt verb, log/slog handler or
// encoding/json output of a Keyring shows a secret key.
type Keyring struct {
	ids    []age.Identity
	recips []age.Recipient // recips[i] is ids[i]'s recipient
	extra  []age.Recipient

	rotating bool // see Rotating
	staged   bool // see Staged

	// pubs returns the recipient strings and fingerprints of recips, once
	// (a post-quantum one is long to encode); copies share it.
	pubs func() [2][]string
}

// NewKeyring returns a Keyring of the given identities, the first being the
// primary. Each must be an *age.X25519Identity or an *age.HybridIdentity.
func NewKeyring(ids ...age.Identity) (*Keyring, error) {
	if len(ids) == 0 {
		return nil, errors.New("keyring: no identity")
	}
	k := &Keyring{ids: slices.Clone(ids)}
	for _, id := range ids {
		switch id := id.(type) {
		case *age.X25519Identity:
			k.recips = append(k.recips, id.Recipient())
		case *age.HybridIdentity:
			k.recips = append(k.recips, id.Recipient())
		default:
			return nil, fmt.Errorf("keyring: unsupported identity type %T", id)
		}
	}
	recips := k.recips
	k.pubs = sync.OnceValue(func() (p [2][]string) {
		for _, r := range recips {
			pub := fmt.Sprint(r)
			sum := sha256.Sum256([]byte(pub))
			p[0] = append(p[0], pub)
			p[1] = append(p[1], "sha256:"+hex.EncodeToString(sum[:16]))
		}
		return p
	})
	return k, nil
}

// secret is the encoding of an identity (its String method).
func secret(id age.Identity) string { return fmt.Sprint(id) }

// A Kind is the kind of an identity: X25519, or the post-quantum
// ML-KEM-768+X25519 hybrid. age cannot mix them in one file.
type Kind int

const (
	// SameKind, the zero value, asks a rotation for a new primary of the
	// current primary's kind.
	SameKind Kind = iota
	X25519
	PostQuantum
)

func (k Kind) String() string {
	if names := [...]string{"the current primary's kind", "X25519", "post-quantum"}; k >= 0 && int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("crypto.Kind(%d)", int(k))
}

// KindOf returns the kind of identity i (0 is the primary).
func (k *Keyring) KindOf(i int) Kind { return kindOf(k.ids[i]) }

// kindOf returns the kind of an identity or recipient; SameKind for a
// plugin's or an unknown type.
func kindOf(x any) Kind {
	switch x.(type) {
	case *age.X25519Identity, *age.X25519Recipient:
		return X25519
	case *age.HybridIdentity, *age.HybridRecipient:
		return PostQuantum
	}
	return SameKind
}

// PostQuantum reports whether the primary is a post-quantum identity.
func (k *Keyring) PostQuantum() bool { return k.KindOf(0) == PostQuantum }

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

// WithRecipients returns a copy of k that also seals to rs, which must be
// of the primary's kind.
func (k *Keyring) WithRecipients(rs ...age.Recipient) (*Keyring, error) {
	for i, r := range rs {
		if kind := kindOf(r); kind != SameKind && kind != k.KindOf(0) { // named by position, never quoted: they may come from a file
			return nil, fmt.Errorf("recipients: recipient %d of %d is %s but the primary key is %s; age cannot mix them (make break-glass keys of the primary's kind)",
				i+1, len(rs), kind, k.KindOf(0))
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

// Recipients returns every recipient a new record is sealed to: the
// primary's first, then the extra recipients.
func (k *Keyring) Recipients() []age.Recipient {
	return append([]age.Recipient{k.recips[0]}, k.extra...)
}

// Len returns the number of identities.
func (k *Keyring) Len() int { return len(k.ids) }

// PublicKey returns the recipient string of identity i (0 is the primary).
func (k *Keyring) PublicKey(i int) string { return k.pubs()[0][i] }

// Fingerprint returns a short, public name of identity i (0 is the
// primary): "sha256:" and the hex of the first 16 bytes of the SHA-256 of
// its recipient string.
func (k *Keyring) Fingerprint(i int) string { return k.pubs()[1][i] }

// Fingerprints returns every identity's fingerprint, the primary first.
func (k *Keyring) Fingerprints() []string { return append([]string(nil), k.pubs()[1][:len(k.ids)]...) }

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

// Staged reports whether k's last identity was added by Stage:
// decrypt-only until Promote makes it the primary.
func (k *Keyring) Staged() bool { return k.staged }

// Stage returns k with id added last, decrypt-only, and marked as staged
// (step 1 of a rotation across hosts). It refuses an identity already in
// k, and one whose kind k's extra recipients cannot follow once promoted.
func (k *Keyring) Stage(id age.Identity) (*Keyring, error) {
	staged, err := NewKeyring(append(k.Identities(), id)...)
	if err != nil {
		return nil, err
	}
	for _, have := range k.ids {
		if secret(have) == secret(id) {
			return nil, errors.New("keyring: that identity is already in the keyring")
		}
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

// Promote returns k with its last (staged) identity made the primary, the
// others kept after it, decrypt-only.
func (k *Keyring) Promote() (*Keyring, error) {
	if len(k.ids) < 2 {
		return nil, errors.New("keyring: no staged identity to promote")
	}
	return k.Rotate(k.ids[len(k.ids)-1])
}

// Rotate returns k with newPrimary as its primary and k's identities,
// not repeated, after it as decrypt-only.
func (k *Keyring) Rotate(newPrimary age.Identity) (*Keyring, error) {
	ids := []age.Identity{newPrimary}
	for _, id := range k.ids {
		if secret(id) != secret(newPrimary) {
			ids = append(ids, id)
		}
	}
	r, err := NewKeyring(ids...)
	if err != nil {
		return nil, err
	}
	return r.WithRecipients(k.extra...)
}

// PrimaryOnly returns k without its decrypt-only identities: what remains
// once old keys are retired.
func (k *Keyring) PrimaryOnly() *Keyring {
	c := *k
	c.ids, c.recips = k.ids[:1:1], k.recips[:1:1]
	c.rotating, c.staged = false, false
	return &c
}

// String describes k by its public keys and its count of extra recipients.
func (k *Keyring) String() string {
	if k == nil {
		return "crypto.Keyring(nil)"
	}
	pubs := k.pubs()[0][:len(k.ids)]
	s := "crypto.Keyring{primary: " + pubs[0]
	if len(pubs) > 1 {
		s += ", decrypt-only: [" + strings.Join(pubs[1:], " ") + "]"
	}
	return s + fmt.Sprintf(", extra recipients: %d}", len(k.extra))
}

// Format prints String for every verb.
func (k *Keyring) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue is String.
func (k *Keyring) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON encodes String.
func (k *Keyring) MarshalJSON() ([]byte, error) { return json.Marshal(k.String()) }
