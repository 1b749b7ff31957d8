package envelope

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// envelopeCases are envelopes as Seal writes them, with what could trip
// an encoding that is not verbatim: escapes, HTML characters and U+2028
// in the auth object, an auth object holding a "mac" field, the largest
// sequence number.
func envelopeCases() []envelope {
	w := time.Date(2026, 11, 28, 1, 2, 3, 456789, time.UTC)
	return []envelope{
		{Record{Version: 1, AuthType: "server", Seq: 1, Written: w, Auth: json.RawMessage(`{"access_token":"a"}`)}, bytes.Repeat([]byte{1}, 32)},
		{Record{Version: 1, AuthType: "server", Seq: 1<<64 - 1, Written: w, Auth: json.RawMessage(`{"extra":{"mac":"x\",\"mac\":\"AAAA"},"a":"}"}`)}, bytes.Repeat([]byte{2}, 32)},
		{Record{Version: 2, Namespace: "/sessionstore/prod", AuthType: "user@example.com", Seq: 7, Written: w.Local(), Auth: json.RawMessage(`{}`)}, bytes.Repeat([]byte{3}, 32)},
		{Record{Version: 2, Namespace: "/sessionstore/<prod>&", AuthType: "a\"b\\c\n日本\u2028", Seq: 7, Written: w, Auth: json.RawMessage(`{"a":"<&>\u2028\u2029","b":"\u003c\\u2028"}`)}, bytes.Repeat([]byte{4}, 32)},
		{Record{Version: 3, AuthType: "server", Seq: 8, Written: w, Auth: json.RawMessage(`{"access_token":"a","health":{"needs_login":"2026-11-28T01:02:03Z"}}`)}, bytes.Repeat([]byte{5}, 32)},
		{Record{Version: 3, Namespace: "/sessionstore/prod", AuthType: "server", Seq: 9, Written: w, Auth: json.RawMessage(`{}`)}, bytes.Repeat([]byte{6}, 32)},
	}
}

// What marshal writes decodes to the same envelope, with the auth object's
// bytes verbatim (what the MAC covers): no HTML or U+2028 escaping.
func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range envelopeCases() {
		data, err := e.marshal()
		require.NoError(t, err)
		assert.True(t, bytes.HasSuffix(data, []byte("}\n")), "one JSON value and a newline: %s", data)
		assert.Contains(t, string(data), `,"auth":`+string(e.Auth)+`,"mac":`, "the auth object verbatim")
		var got envelope
		require.NoError(t, json.Unmarshal(data, &got), string(data))
		assert.Equal(t, e.Version, got.Version)
		assert.Equal(t, e.Namespace, got.Namespace)
		assert.Equal(t, e.AuthType, got.AuthType)
		assert.Equal(t, e.Seq, got.Seq)
		assert.True(t, e.Written.Equal(got.Written), "written %v vs %v", e.Written, got.Written)
		assert.Equal(t, string(e.Auth), string(got.Auth), "the auth bytes verbatim, as MACed")
		assert.Equal(t, e.MAC, got.MAC)
	}
}
