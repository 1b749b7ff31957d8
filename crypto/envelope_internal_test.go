package crypto

import (
	"bytes"
	"encoding/json"
	"strings"
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

func TestScanJSON(t *testing.T) {
	for in, want := range map[string][2]bool{ // valid, compact
		`{"a":"b c"}`:                          {true, true},
		`{"a": "b"}`:                           {true, false},
		"{\"a\":\"b\\\" \"}":                   {true, true},
		"[1,\n2]":                              {true, false},
		`{"a":"\\","b":1}`:                     {true, true},
		`{"a":"\\" ,"b":1}`:                    {true, false},
		` {}`:                                  {true, false},
		`{}`:                                   {true, true},
		`{ }`:                                  {true, false},
		`[]`:                                   {true, true},
		`[[],{},"",0,-0.5e+7,true,false,null]`: {true, true},
		`{"a":"\u00e9\ud83d"}`:                 {true, true},
		``:                                     {false, true},
		` `:                                    {false, false},
		`{`:                                    {false, true},
		`{"a"}`:                                {false, true},
		`{"a":1,}`:                             {false, true},
		`[1,]`:                                 {false, true},
		`[1 2]`:                                {false, false},
		`01`:                                   {false, true},
		`1.`:                                   {false, true},
		`1e`:                                   {false, true},
		`-`:                                    {false, true},
		`"\x"`:                                 {false, true},
		`"\u12"`:                               {false, true},
		"\"\x01\"":                             {false, true},
		`"abc`:                                 {false, true},
		`tru`:                                  {false, true},
		`nul`:                                  {false, true},
		`{"a":1}}`:                             {false, true},
		`[}`:                                   {false, true},
		`{]`:                                   {false, true},
	} {
		valid, compact := scanJSON([]byte(in))
		assert.Equal(t, json.Valid([]byte(in)), valid, "json.Valid disagrees with the case: %q", in)
		assert.Equal(t, want[0], valid, "valid: %q", in)
		if valid {
			assert.Equal(t, want[1], compact, "compact: %q", in)
		}
	}
	deep := func(n int) []byte { return []byte(strings.Repeat("[", n) + strings.Repeat("]", n)) }
	for _, n := range []int{maxNestingDepth, maxNestingDepth + 1} {
		valid, _ := scanJSON(deep(n))
		assert.Equal(t, json.Valid(deep(n)), valid, "nesting depth %d", n)
	}
}

// FuzzScanJSON: the one-pass scanner says what json.Valid says, and a
// valid value is compact exactly when json.Compact leaves it as it is.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{"access_token":"a","expiry":"2026-11-28T00:00:00Z","ref":{"type":"user","id":1}}`,
		`{"a": [1, 2.5e-3, true, null, "\u00e9\n"]}`, `[{}, [], ""]`, `-0`, ` "x" `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		valid, compact := scanJSON(data)
		if want := json.Valid(data); valid != want {
			t.Fatalf("scanJSON says valid=%v, json.Valid %v: %q", valid, want, data)
		}
		if !valid {
			return
		}
		var buf bytes.Buffer
		require.NoError(t, json.Compact(&buf, data))
		if want := bytes.Equal(buf.Bytes(), data); compact != want {
			t.Fatalf("scanJSON says compact=%v, json.Compact %v: %q", compact, want, data)
		}
	})
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
