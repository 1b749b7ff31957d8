package wire

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
)

// canonicalCases are auth objects of the canonical form, and some that are
// not (they go through encoding/json).
func canonicalCases() []sessionstore.AuthObject {
	jwt := "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("eyJzdWIiOiIxMjM0NTY3ODkwIn0", 50) + ".sig-_"
	exp := time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.FixedZone("", 3600))
	return []sessionstore.AuthObject{
		{},
		{AccessToken: "a"},
		{AccessToken: jwt, RefreshToken: strings.Repeat("r", 512), TokenType: "Bearer", Expiry: exp,
			Scope: "global:all", Ref: sessionstore.Ref{Type: "user", ID: 123}, TransferToken: "t"},
		{AccessToken: "a", Expiry: exp.UTC(), Ref: sessionstore.Ref{ID: -9223372036854775808}},
		{AccessToken: "a", Ref: sessionstore.Ref{Type: "app"}},
		// Not canonical: escapes, HTML characters, non-ASCII, Extra.
		{AccessToken: "a\"b\\c\n"},
		{AccessToken: "<&>"},
		{AccessToken: "日本"},
		{AccessToken: "\xff"},
		{AccessToken: "a", Extra: map[string]any{"id_token": "x", "n": 1.5}},
		{AccessToken: "a", Expiry: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
}

// EncodeAuth writes what json.Marshal writes, and DecodeAuth reads back
// what encoding/json reads.
func TestCanonicalMatchesEncodingJSON(t *testing.T) {
	for _, a := range canonicalCases() {
		want, werr := json.Marshal(auth(a))
		got, err := EncodeAuth(a)
		if werr != nil {
			assert.Error(t, err, "%v", a)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got))
		assertDecodesAsEncodingJSON(t, got)
	}
}

// The canonical parser takes only the canonical form.
func TestCanonicalParseRejects(t *testing.T) {
	for _, s := range []string{
		``, `{}`, `{"access_token":"a"} `, ` {"access_token":"a"}`, `{"access_token": "a"}`,
		`{"Access_Token":"a"}`, `{"access_token":"a","access_token":"b"}`,
		`{"token_type":"x","access_token":"a"}`, `{"access_token":"a\u0062"}`, `{"access_token":"a\"}`,
		`{"access_token":"a","ref":{"type":"u","id":01}}`, `{"access_token":"a","ref":{"type":"u","id":1.0}}`,
		`{"access_token":"a","ref":{"type":"u","id":99999999999999999999}}`, `{"access_token":"a","ref":{"id":1}}`,
		`{"access_token":"a","expiry":"yesterday"}`, `{"access_token":"a","extra":{}}`, `{"access_token":null}`,
	} {
		_, ok := parseCanonical([]byte(s))
		assert.False(t, ok, s)
		assertDecodesAsEncodingJSON(t, []byte(s))
	}
}

// assertDecodesAsEncodingJSON checks that DecodeAuth and ExpiryOf say what
// encoding/json says of data, and the canonical parser nothing else.
func assertDecodesAsEncodingJSON(t *testing.T, data []byte) {
	t.Helper()
	var want auth
	werr := json.Unmarshal(data, &want)
	got, err := DecodeAuth(data)
	if werr != nil {
		if _, ok := parseCanonical(data); ok {
			t.Fatalf("the canonical parser took what encoding/json rejects (%v): %q", werr, data)
		}
		assert.Error(t, err)
		return
	}
	require.NoError(t, err, "%q", data)
	if !reflect.DeepEqual(sessionstore.AuthObject(want), got) {
		t.Fatalf("decodes as %#v, encoding/json as %#v: %q", got, sessionstore.AuthObject(want), data)
	}
	if e := ExpiryOf(data); !reflect.DeepEqual(e, want.Expiry) {
		t.Fatalf("ExpiryOf says %v, encoding/json %v: %q", e, want.Expiry, data)
	}
}

// FuzzAuthEncode: EncodeAuth writes what json.Marshal writes, whatever
// the fields hold.
func FuzzAuthEncode(f *testing.F) {
	for _, a := range canonicalCases() {
		_, off := a.Expiry.Zone()
		f.Add(a.AccessToken, a.RefreshToken, a.TokenType, a.Expiry.Unix(), int64(a.Expiry.Nanosecond()), off,
			a.Scope, a.Ref.Type, a.Ref.ID, a.TransferToken)
	}
	f.Fuzz(func(t *testing.T, at, rt, tt string, sec, nsec int64, off int, scope, refType string, refID int64, tr string) {
		a := sessionstore.AuthObject{AccessToken: at, RefreshToken: rt, TokenType: tt, Scope: scope,
			Ref: sessionstore.Ref{Type: refType, ID: refID}, TransferToken: tr}
		if sec != 0 || nsec != 0 {
			a.Expiry = time.Unix(sec, nsec).In(time.FixedZone("", off%(100*3600)))
		}
		want, werr := json.Marshal(auth(a))
		got, err := EncodeAuth(a)
		if werr != nil {
			if err == nil {
				t.Fatalf("encoded what encoding/json rejects (%v)", werr)
			}
			return
		}
		if err != nil || string(got) != string(want) {
			t.Fatalf("EncodeAuth wrote %q (%v), json.Marshal %q", got, err, want)
		}
		assertDecodesAsEncodingJSON(t, got)
	})
}

// FuzzAuthDecode: DecodeAuth and ExpiryOf read any bytes as encoding/json
// does.
func FuzzAuthDecode(f *testing.F) {
	for _, a := range canonicalCases() {
		if b, err := json.Marshal(auth(a)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		assertDecodesAsEncodingJSON(t, data)
	})
}
