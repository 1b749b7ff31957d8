package crypto

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hand-written envelope encoding says what encoding/json would: the
// same fields, decoding to the same values.
func TestEnvelopeJSONMatchesEncodingJSON(t *testing.T) {
	for _, e := range []envelope{
		{Version: 1, AuthType: "server", Seq: 1, Written: time.Date(2026, 11, 28, 1, 2, 3, 456789, time.UTC),
			Auth: json.RawMessage(`{"access_token":"a"}`), MAC: []byte{0, 1, 2, 250, 251, 252}},
		{Version: 2, Namespace: "/sessionstore/<prod>&\"x\"", AuthType: "user@example.com\n\t\u2028日本", Seq: 1 << 63,
			Written: time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), Auth: json.RawMessage(`{"a":"<&>","b":[1,2.5,null]}`), MAC: bytes.Repeat([]byte{7}, 32)},
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(&e))
		got, err := e.appendJSON(nil)
		require.NoError(t, err)
		var w, g envelope
		require.NoError(t, json.Unmarshal(want.Bytes(), &w))
		require.NoError(t, json.Unmarshal(got, &g), string(got))
		assert.Equal(t, w.Version, g.Version)
		assert.Equal(t, w.Namespace, g.Namespace)
		assert.Equal(t, w.AuthType, g.AuthType)
		assert.Equal(t, w.Seq, g.Seq)
		assert.True(t, w.Written.Equal(g.Written))
		assert.Equal(t, string(e.Auth), string(g.Auth), "the auth bytes verbatim, as MACed")
		assert.Equal(t, w.MAC, g.MAC)
	}
}

func TestIsCompact(t *testing.T) {
	for in, want := range map[string]bool{
		`{"a":"b c"}`:        true,
		`{"a": "b"}`:         false,
		"{\"a\":\"b\\\" \"}": true,
		"[1,\n2]":            false,
		`{"a":"\\","b":1}`:   true,
		`{"a":"\\" ,"b":1}`:  false,
	} {
		assert.Equal(t, want, isCompact([]byte(in)), in)
	}
}

// canonicalCases are envelopes as Seal writes them, with what could trip
// a parser that is not encoding/json: escapes, an auth object holding a
// "mac" field, the largest sequence number.
func canonicalCases() []envelope {
	w := time.Date(2026, 11, 28, 1, 2, 3, 456789, time.UTC)
	return []envelope{
		{Version: 1, AuthType: "server", Seq: 1, Written: w, Auth: json.RawMessage(`{"access_token":"a"}`), MAC: bytes.Repeat([]byte{1}, 32)},
		{Version: 1, AuthType: "server", Seq: 1<<64 - 1, Written: w, Auth: json.RawMessage(`{"extra":{"mac":"x\",\"mac\":\"AAAA"},"a":"}"}`), MAC: bytes.Repeat([]byte{2}, 32)},
		{Version: 2, Namespace: "/sessionstore/prod", AuthType: "user@example.com", Seq: 7, Written: w.Local(), Auth: json.RawMessage(`{}`), MAC: bytes.Repeat([]byte{3}, 32)},
		{Version: 2, Namespace: "/sessionstore/<prod>", AuthType: "a\"b\\c\n日本", Seq: 7, Written: w, Auth: json.RawMessage(`{"a":1}`), MAC: bytes.Repeat([]byte{4}, 32)},
	}
}

// TestCanonicalParseMatchesEncodingJSON: what the parser without
// reflection accepts, encoding/json decodes to the same envelope; and it
// accepts what Seal writes (strings with escapes are left to encoding/json).
func TestCanonicalParseMatchesEncodingJSON(t *testing.T) {
	for _, e := range canonicalCases() {
		data, err := e.appendJSON(nil)
		require.NoError(t, err)
		got, ok := parseCanonical(data)
		var want envelope
		require.NoError(t, json.Unmarshal(data, &want))
		if bytes.ContainsRune([]byte(e.Namespace+e.AuthType), '"') || bytes.ContainsAny([]byte(e.Namespace+e.AuthType), "\\\n<") {
			assert.False(t, ok, "a string with escapes goes to encoding/json: %s", data)
			continue
		}
		require.True(t, ok, "Seal's form parses: %s", data)
		assertSameEnvelope(t, want, got)
	}
}

func assertSameEnvelope(t testing.TB, want, got envelope) {
	t.Helper()
	assert.Equal(t, want.Version, got.Version)
	assert.Equal(t, want.Namespace, got.Namespace)
	assert.Equal(t, want.AuthType, got.AuthType)
	assert.Equal(t, want.Seq, got.Seq)
	assert.True(t, want.Written.Equal(got.Written), "written %v vs %v", want.Written, got.Written)
	assert.Equal(t, string(want.Auth), string(got.Auth))
	assert.Equal(t, want.MAC, got.MAC)
}

// FuzzCanonicalParse: for any plaintext, what the parser without
// reflection accepts with an auth object that is valid JSON (verify takes
// it only with a MAC that verifies, which Seal writes only over valid
// JSON), encoding/json accepts too, as the same envelope.
func FuzzCanonicalParse(f *testing.F) {
	for _, e := range canonicalCases() {
		data, err := e.appendJSON(nil)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := parseCanonical(data)
		if !ok || !json.Valid(got.Auth) {
			return
		}
		var want envelope
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("accepted what encoding/json rejects (%v): %q", err, data)
		}
		assertSameEnvelope(t, want, got)
	})
}
