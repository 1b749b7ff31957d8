package wire

import (
	"strconv"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/canonjson"
)

// The canonical form: what json.Marshal writes for an auth object without
// Extra whose strings are all plain (printable ASCII that encoding/json
// writes as it is). It is encoded here, and parsed (package canonjson),
// without reflection, a third of a Set's work outside age; anything else
// goes through encoding/json. Both agree byte for byte and value for value
// (FuzzAuth*).

// plain marks the bytes encoding/json writes in a string as themselves
// (with its HTML escaping, as json.Marshal does): printable ASCII but the
// quote, the backslash, '<', '>' and '&'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			return false
		}
	}
	return true
}

// appendCanonical appends a's stored form, as json.Marshal writes it, if
// a has the canonical form; ok is false otherwise.
func appendCanonical(b []byte, a *auth) (_ []byte, ok bool) {
	if a.Extra != nil || !isPlain(a.AccessToken) || !isPlain(a.RefreshToken) || !isPlain(a.TokenType) ||
		!isPlain(a.Scope) || !isPlain(a.Ref.Type) || !isPlain(a.TransferToken) {
		return nil, false
	}
	// Before any token is in b: a failure then leaves no copy of one.
	var expiry []byte
	if !a.Expiry.IsZero() {
		e, err := a.Expiry.MarshalJSON()
		if err != nil {
			return nil, false // encoding/json reports it
		}
		expiry = e
	}
	str := func(b []byte, key, s string) []byte {
		b = append(b, key...)
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	b = str(b, `{"access_token":`, a.AccessToken)
	if a.RefreshToken != "" {
		b = str(b, `,"refresh_token":`, a.RefreshToken)
	}
	if a.TokenType != "" {
		b = str(b, `,"token_type":`, a.TokenType)
	}
	if expiry != nil {
		b = append(b, `,"expiry":`...)
		b = append(b, expiry...)
	}
	if a.Scope != "" {
		b = str(b, `,"scope":`, a.Scope)
	}
	if a.Ref != (sessionstore.Ref{}) {
		b = str(b, `,"ref":{"type":`, a.Ref.Type)
		b = append(b, `,"id":`...)
		b = strconv.AppendInt(b, a.Ref.ID, 10)
		b = append(b, '}')
	}
	if a.TransferToken != "" {
		b = str(b, `,"transfer_token":`, a.TransferToken)
	}
	return append(b, '}'), true
}

// canonicalLen bounds the length of a's canonical form.
func canonicalLen(a *auth) int {
	return len(a.AccessToken) + len(a.RefreshToken) + len(a.TokenType) + len(a.Scope) +
		len(a.Ref.Type) + len(a.TransferToken) + 192
}

// parseCanonical parses the canonical form (its fields in their order, no
// whitespace, strings without escapes); ok is false for anything else,
// which encoding/json then decodes.
func parseCanonical(data []byte) (a auth, ok bool) {
	if !parseInto(data, &a, true) {
		return auth{}, false
	}
	return a, true
}

// parseInto parses the canonical form into a: every field if all is true,
// the expiry alone (copying no token) if not.
func parseInto(data []byte, a *auth, all bool) bool {
	sc := canonjson.NewScanner(data)
	// str consumes a string field, into *dst if all.
	str := func(dst *string) bool {
		if all {
			v, ok := sc.String()
			*dst = v
			return ok
		}
		_, ok := sc.Str()
		return ok
	}
	if !sc.Lit(`{"access_token":`) || !str(&a.AccessToken) {
		return false
	}
	if sc.Lit(`,"refresh_token":`) && !str(&a.RefreshToken) ||
		sc.Lit(`,"token_type":`) && !str(&a.TokenType) {
		return false
	}
	if sc.Lit(`,"expiry":`) {
		if e, ok := sc.Str(); !ok || a.Expiry.UnmarshalJSON(e) != nil {
			return false
		}
	}
	if sc.Lit(`,"scope":`) && !str(&a.Scope) {
		return false
	}
	if sc.Lit(`,"ref":{"type":`) {
		if !str(&a.Ref.Type) || !sc.Lit(`,"id":`) {
			return false
		}
		id, ok := sc.Int()
		if !ok || !sc.Lit("}") {
			return false
		}
		a.Ref.ID = id
	}
	if sc.Lit(`,"transfer_token":`) && !str(&a.TransferToken) {
		return false
	}
	return sc.Lit("}") && len(sc.Rest()) == 0
}

// expiryOf is ExpiryOf for the canonical form, without the rest of it.
func expiryOf(data []byte) (time.Time, bool) {
	var a auth
	ok := parseInto(data, &a, false)
	return a.Expiry, ok
}
