package crypto

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
)

// String describes k by its public keys only: the primary first, then the
// decrypt-only identities, then the count of extra recipients. No fmt
// verb, log/slog handler or encoding/json output of a Keyring ever shows a
// secret key.
func (k *Keyring) String() string {
	if k == nil {
		return "crypto.Keyring(nil)"
	}
	var b strings.Builder
	b.WriteString("crypto.Keyring{primary: ")
	b.WriteString(k.PublicKey(0))
	if len(k.recips) > 1 {
		b.WriteString(", decrypt-only: [")
		for i := 1; i < len(k.recips); i++ {
			if i > 1 {
				b.WriteString(" ")
			}
			b.WriteString(k.PublicKey(i))
		}
		b.WriteString("]")
	}
	fmt.Fprintf(&b, ", extra recipients: %d}", len(k.extra))
	return b.String()
}

// GoString is String, for %#v.
func (k *Keyring) GoString() string { return k.String() }

// Format implements fmt.Formatter: every verb prints String.
func (k *Keyring) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue implements slog.LogValuer with the public keys only.
func (k *Keyring) LogValue() slog.Value {
	if k == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(
		slog.String("primary", k.PublicKey(0)),
		slog.Any("decrypt_only", k.publicKeys()[1:]),
		slog.Int("extra_recipients", len(k.extra)),
	)
}

// MarshalJSON implements json.Marshaler with the public keys only, so that
// a Keyring nested in a logged or encoded value shows no secret.
func (k *Keyring) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Primary         string   `json:"primary"`
		DecryptOnly     []string `json:"decrypt_only,omitempty"`
		ExtraRecipients int      `json:"extra_recipients"`
	}{k.PublicKey(0), k.publicKeys()[1:], len(k.extra)})
}

func (k *Keyring) publicKeys() []string {
	keys := make([]string, len(k.recips))
	for i := range k.recips {
		keys[i] = k.PublicKey(i)
	}
	return keys
}
