package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
)

func TestParseOAuth(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a, err := parseOAuth([]byte(` {"access_token":"secret-a","token_type":"bearer","refresh_token":"secret-r","expires_in":3600,
		"scope":"global:all","ref":{"type":"user","id":42},"transfer_token":"secret-t","id_token":"secret-i"} `), t0)
	require.NoError(t, err)
	assert.Equal(t, sessionstore.AuthObject{
		AccessToken:   "secret-a",
		TokenType:     "bearer",
		RefreshToken:  "secret-r",
		Expiry:        t0.Add(time.Hour),
		Scope:         "global:all",
		Ref:           sessionstore.Ref{Type: "user", ID: 42},
		TransferToken: "secret-t",
	}, a, "other fields are not kept, as FromToken keeps none")

	for in, want := range map[string]time.Time{
		`{"access_token":"secret-a","expires_in":"60"}`: t0.Add(time.Minute),
		`{"access_token":"secret-a","expires_in":60.0}`: t0.Add(time.Minute),
		`{"access_token":"secret-a","expires_in":0}`:    {},
		`{"access_token":"secret-a","expires_in":null}`: {},
		`{"access_token":"secret-a"}`:                   {},
	} {
		a, err := parseOAuth([]byte(in), t0)
		require.NoError(t, err, in)
		assert.Equal(t, want, a.Expiry, in)
	}
	a, err = parseOAuth([]byte(`{"access_token":"secret-a","refresh_token":null,"scope":null,"ref":null}`), t0)
	require.NoError(t, err)
	assert.Equal(t, sessionstore.AuthObject{AccessToken: "secret-a"}, a)

	for in, want := range map[string]string{
		``:                               "empty",
		` `:                              "empty",
		`{}`:                             "no access_token",
		`null`:                           "want one JSON object",
		`[]`:                             "want one JSON object",
		`"secret-a"`:                     "want one JSON object",
		`{"access_token":"secret-a"} {}`: "want one JSON object",
		`{"access_token":"secret-a",}`:   "malformed JSON at byte 28",
		`{"access_token":"secret-a"`:     "malformed JSON (it ends early)",
		`{"access_token":""}`:            "no access_token",
		`{"access_token":["secret-a"]}`:  "access_token is not a string",
		`{"access_token":"secret-a","refresh_token":1}`:              "refresh_token is not a string",
		`{"access_token":"secret-a","expires_in":"x"}`:               "expires_in is not a number",
		`{"access_token":"secret-a","expires_in":true}`:              "expires_in is not a number",
		`{"access_token":"secret-a","expires_in":1e10}`:              "expires_in 1e10 is out of range",
		`{"access_token":"secret-a","expires_in":60.5}`:              "expires_in is not a whole number of seconds",
		`{"access_token":"secret-a","expires_in":-5}`:                "expires_in -5 is out of range",
		`{"access_token":"secret-a","expires_in":4294967296}`:        "expires_in 4294967296 is out of range",
		`{"access_token":"secret-a","ref":"user:1"}`:                 "ref is not an object with a type and an id",
		`{"access_token":"secret-a","ref":{"type":"user"}}`:          "ref id is not an integer",
		`{"access_token":"secret-a","ref":{"type":"user","id":1.5}}`: "ref id is not an integer",
		`{"error":"invalid_grant","error_description":"secret-d"}`:   `an OAuth error response (error "invalid_grant"), not a token`,
		`{"error":"secret-\u001b[2J"}`:                               "an OAuth error response, not a token",
		`{"refresh_token":"secret-r"}`:                               "no access_token",
		`{"ACCESS_TOKEN":"secret-a","Expires_In":60}`:                "no access_token",
	} {
		_, err := parseOAuth([]byte(in), t0)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
		assert.NotContains(t, err.Error(), "secret-", "%s: no token in the message", in)
	}
}
