package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
)

// cases are auth objects with what could trip an encoding: escapes, HTML
// characters, non-ASCII, Extra, health, the edges of the integers.
func cases() []sessionstore.AuthObject {
	jwt := "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("eyJzdWIiOiIxMjM0NTY3ODkwIn0", 50) + ".sig-_"
	exp := time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.FixedZone("", 3600))
	return []sessionstore.AuthObject{
		{},
		{AccessToken: "a"},
		{AccessToken: jwt, RefreshToken: strings.Repeat("r", 512), TokenType: "Bearer", Expiry: exp,
			Scope: "global:all", Ref: sessionstore.Ref{Type: "user", ID: 123}, TransferToken: "t"},
		{AccessToken: "a", Expiry: exp.UTC(), Ref: sessionstore.Ref{ID: -9223372036854775808}},
		{AccessToken: "a", Ref: sessionstore.Ref{Type: "app"}},
		{AccessToken: "a\"b\\c\n"},
		{AccessToken: "<&>"},
		{AccessToken: "日本"},
		{AccessToken: "a", Extra: map[string]any{"id_token": "x", "n": 1.5, "l": []any{true, nil, "<"}}},
		{AccessToken: "a", RefreshToken: "r", Health: sessionstore.Health{NeedsLogin: exp, Reason: "invalid_grant", LastRefresh: exp.Add(-time.Hour)}},
		{AccessToken: "a", Health: sessionstore.Health{LastRefresh: exp}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, a := range cases() {
		data, err := EncodeAuth(a)
		require.NoError(t, err)
		got, err := DecodeAuth(data)
		require.NoError(t, err)
		assert.True(t, a.Equal(got), "%d bytes round trip", len(data)) // %v of a would redact; no token printed either way
		assert.True(t, ExpiryOf(data).Equal(a.Expiry))
	}
}

// The field names of the stored form are those of every record ever
// written: they never change.
func TestStoredFieldNames(t *testing.T) {
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	data, err := EncodeAuth(sessionstore.AuthObject{
		AccessToken: "A", RefreshToken: "R", TokenType: "Bearer", Expiry: at, Scope: "s",
		Ref: sessionstore.Ref{Type: "user", ID: 1}, TransferToken: "T", Extra: map[string]any{"x": "<"},
		Health: sessionstore.Health{NeedsLogin: at, Reason: "invalid_grant", LastRefresh: at.Add(-time.Hour)},
	})
	require.NoError(t, err)
	assert.Equal(t, `{"access_token":"A","refresh_token":"R","token_type":"Bearer","expiry":"2026-11-27T08:00:00Z",`+
		`"scope":"s","ref":{"type":"user","id":1},"transfer_token":"T","extra":{"x":"\u003c"},`+
		`"health":{"needs_login":"2026-11-27T08:00:00Z","reason":"invalid_grant","last_refresh":"2026-11-27T07:00:00Z"}}`, string(data))

	data, err = EncodeAuth(sessionstore.AuthObject{AccessToken: "A"})
	require.NoError(t, err)
	assert.Equal(t, `{"access_token":"A"}`, string(data), "zero fields and a zero health are omitted")
}

// A record written before health existed reads with a zero health; one
// that carries a health field unknown to it (a later field) still reads.
func TestDecodesEveryVersion(t *testing.T) {
	a, err := DecodeAuth([]byte(`{"access_token":"A","expiry":"2026-11-27T08:00:00Z","ref":{"type":"user","id":1}}`))
	require.NoError(t, err)
	assert.Equal(t, sessionstore.Health{}, a.Health)
	a, err = DecodeAuth([]byte(`{"access_token":"A","health":{"last_refresh":"2026-11-27T07:00:00Z","later":1},"later":{}}`))
	require.NoError(t, err)
	assert.True(t, a.Health.LastRefresh.Equal(time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)))
}

func TestVersionOf(t *testing.T) {
	assert.Equal(t, 0, VersionOf(sessionstore.AuthObject{AccessToken: "a"}))
	assert.Equal(t, 0, VersionOf(sessionstore.AuthObject{Health: sessionstore.Health{LastRefresh: time.Now()}}),
		"a last refresh alone stays readable by older readers")
	assert.Equal(t, MarkedVersion, VersionOf(sessionstore.AuthObject{Health: sessionstore.Health{NeedsLogin: time.Now()}}))
}

// assertDecodeSafe checks what DecodeAuth and ExpiryOf say of any bytes:
// an error that wraps ErrTampered and quotes nothing of data, or a value
// that encodes and decodes to itself, with ExpiryOf's expiry.
func assertDecodeSafe(t *testing.T, data []byte) {
	t.Helper()
	a, err := DecodeAuth(data)
	if err != nil {
		if !assert.ErrorIs(t, err, sessionstore.ErrTampered) {
			return
		}
		if s := string(data); len(s) >= 8 && strings.Contains(err.Error(), s) {
			t.Fatalf("the error quotes the input")
		}
		return
	}
	if !ExpiryOf(data).Equal(a.Expiry) {
		t.Fatalf("ExpiryOf says %v, DecodeAuth %v", ExpiryOf(data), a.Expiry)
	}
	again, err := EncodeAuth(a)
	if err != nil {
		return // an expiry encoding/json cannot write (a year past 9999)
	}
	b, err := DecodeAuth(again)
	require.NoError(t, err)
	if !a.Equal(b) {
		t.Fatalf("%q decodes to a value that does not survive a round trip", data)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, s := range []string{
		``, `secret-token`, `{"access_token":"secret-token"`, `{"access_token":5}`, `{"expiry":"yesterday"}`,
		`{"access_token":"a","health":{"needs_login":"secret-token"}}`, `[]`, `null`,
	} {
		assertDecodeSafe(t, []byte(s))
	}
}

// FuzzAuthRoundTrip: whatever the fields hold, DecodeAuth reads back what
// EncodeAuth wrote (strings that are valid UTF-8; encoding/json replaces
// invalid bytes), ExpiryOf reads its expiry, and an error quotes no token.
func FuzzAuthRoundTrip(f *testing.F) {
	for _, a := range cases() {
		_, off := a.Expiry.Zone()
		extra, _ := json.Marshal(a.Extra)
		f.Add(a.AccessToken, a.RefreshToken, a.TokenType, a.Expiry.Unix(), int64(a.Expiry.Nanosecond()), off,
			a.Scope, a.Ref.Type, a.Ref.ID, a.TransferToken, extra, a.Health.NeedsLogin.UnixNano(), a.Health.Reason)
	}
	f.Fuzz(func(t *testing.T, at, rt, tt string, sec, nsec int64, off int, scope, refType string, refID int64, tr string,
		extra []byte, needsLogin int64, reason string) {
		for _, s := range []string{at, rt, tt, scope, refType, tr, reason} {
			if !utf8.ValidString(s) {
				return
			}
		}
		a := sessionstore.AuthObject{AccessToken: at, RefreshToken: rt, TokenType: tt, Scope: scope,
			Ref: sessionstore.Ref{Type: refType, ID: refID}, TransferToken: tr}
		if sec != 0 || nsec != 0 {
			// Whole minutes: RFC 3339 has no seconds in a zone offset.
			a.Expiry = time.Unix(sec, nsec).In(time.FixedZone("", off%(100*3600)/60*60))
		}
		if needsLogin != 0 {
			a.Health = sessionstore.Health{NeedsLogin: time.Unix(0, needsLogin).UTC(), Reason: reason, LastRefresh: time.Unix(0, needsLogin/2)}
		}
		var m map[string]any
		if json.Unmarshal(extra, &m) == nil && utf8.Valid(extra) {
			a.Extra = m
		}
		data, err := EncodeAuth(a)
		if err != nil {
			for _, s := range []string{at, rt, tr} {
				if len(s) >= 8 && strings.Contains(err.Error(), s) {
					t.Fatalf("the error quotes a token")
				}
			}
			return
		}
		got, err := DecodeAuth(data)
		if err != nil {
			t.Fatalf("what EncodeAuth wrote does not decode: %v", err)
		}
		if !a.Equal(got) {
			t.Fatalf("round trip changed the value: %q", data)
		}
		if !ExpiryOf(data).Equal(a.Expiry) {
			t.Fatalf("ExpiryOf says %v, want %v", ExpiryOf(data), a.Expiry)
		}
	})
}

// FuzzAuthDecode: DecodeAuth and ExpiryOf read any bytes safely (see
// assertDecodeSafe).
func FuzzAuthDecode(f *testing.F) {
	for _, a := range cases() {
		if b, err := EncodeAuth(a); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"access_token":"a","health":{"needs_login":"2026-11-27T08:00:00Z","reason":"invalid_grant"},"x":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		assertDecodeSafe(t, data)
	})
}
