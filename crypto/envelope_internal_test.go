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
