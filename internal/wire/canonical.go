package wire

import (
	"strconv"
	"time"

	"github.com/sessionstore/sessionstore"
)

// The canonical form: what json.Marshal writes for an auth object without
// Extra whose strings are all plain (printable ASCII that encoding/json
// writes as it is). It is encoded and parsed here without reflection, a
// third of a Set's work outside age; anything else goes through
// encoding/json. Both agree byte for byte and value for value (FuzzAuth*).

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
	if !a.Expiry.IsZero() {
		e, err := a.Expiry.MarshalJSON()
		if err != nil {
			return nil, false // encoding/json reports it
		}
		b = append(b, `,"expiry":`...)
		b = append(b, e...)
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

// parseCanonical parses the canonical form (its fields in their order,
// plain strings, no whitespace); ok is false for anything else, which
// encoding/json then decodes.
func parseCanonical(data []byte) (a auth, ok bool) {
	if !parseInto(data, &a, true) {
		return auth{}, false
	}
	return a, true
}

// parseInto parses the canonical form into a: every field if all is true,
// the expiry alone (copying no token) if not.
func parseInto(data []byte, a *auth, all bool) bool {
	p := parser{data: data}
	field := func(s *string) *string {
		if all {
			return s
		}
		return nil
	}
	if !p.lit(`{"access_token":`) || !p.str(field(&a.AccessToken)) {
		return false
	}
	if p.lit(`,"refresh_token":`) && !p.str(field(&a.RefreshToken)) ||
		p.lit(`,"token_type":`) && !p.str(field(&a.TokenType)) {
		return false
	}
	if p.lit(`,"expiry":`) {
		start := p.i
		if !p.str(nil) || a.Expiry.UnmarshalJSON(data[start:p.i]) != nil {
			return false
		}
	}
	if p.lit(`,"scope":`) && !p.str(field(&a.Scope)) {
		return false
	}
	if p.lit(`,"ref":{"type":`) && (!p.str(field(&a.Ref.Type)) || !p.lit(`,"id":`) || !p.int(&a.Ref.ID) || !p.lit("}")) {
		return false
	}
	if p.lit(`,"transfer_token":`) && !p.str(field(&a.TransferToken)) {
		return false
	}
	return p.lit("}") && p.i == len(data)
}

type parser struct {
	data []byte
	i    int
}

// lit consumes s if the input goes on with it.
func (p *parser) lit(s string) bool {
	if len(p.data)-p.i < len(s) || string(p.data[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// str consumes a plain string into *s (nil: skips it, copying nothing).
func (p *parser) str(s *string) bool {
	if p.i == len(p.data) || p.data[p.i] != '"' {
		return false
	}
	start := p.i + 1
	for j := start; j < len(p.data); j++ {
		switch c := p.data[j]; {
		case c == '"':
			if s != nil {
				*s = string(p.data[start:j])
			}
			p.i = j + 1
			return true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return false
		}
	}
	return false
}

// int consumes a JSON integer (no leading zero) that fits an int64.
func (p *parser) int(n *int64) bool {
	j := p.i
	if j < len(p.data) && p.data[j] == '-' {
		j++
	}
	digits := j
	for j < len(p.data) && '0' <= p.data[j] && p.data[j] <= '9' {
		j++
	}
	if j == digits || p.data[digits] == '0' && j > digits+1 {
		return false
	}
	if j < len(p.data) && (p.data[j] == '.' || p.data[j] == 'e' || p.data[j] == 'E') {
		return false
	}
	v, err := strconv.ParseInt(string(p.data[p.i:j]), 10, 64)
	if err != nil {
		return false
	}
	*n, p.i = v, j
	return true
}

// expiryOf is ExpiryOf for the canonical form, without the rest of it.
func expiryOf(data []byte) (time.Time, bool) {
	var a auth
	ok := parseInto(data, &a, false)
	return a.Expiry, ok
}
