package sessionstore_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
)

func TestAuthObjectNeverPrintsTokens(t *testing.T) {
	a := sampleAuth()
	a.Extra = map[string]any{"id_token": "idt-SECRET"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("session", "auth", a)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("session", "auth", a)
	for _, out := range []string{
		fmt.Sprint(a), fmt.Sprintf("%v|%+v|%#v|%s|%q", a, a, a, a, a), fmt.Sprintf("%v", &a), fmt.Sprintf("%+v", []sessionstore.AuthObject{a}),
		logged.String(),
	} {
		assert.NotContains(t, out, "SECRET", out)
	}
	assert.Contains(t, fmt.Sprint(a), "[redacted]")
	assert.Contains(t, fmt.Sprint(a), "user:123", "non-secret fields still show")
	assert.Contains(t, logged.String(), "id_token", "extra keys show, not their values")

	data, err := json.Marshal(a)
	require.NoError(t, err)
	assert.NotContains(t, string(data), "SECRET", "encoding/json redacts too")
}

// slog's JSON handler marshals a value nested in a slice, map or struct
// without calling LogValue: MarshalJSON must redact it.
func TestAuthObjectNestedNeverLogsTokens(t *testing.T) {
	a := sampleAuth()
	a.Extra = map[string]any{"id_token": "idt-SECRET"}
	type holder struct {
		Name string
		Auth sessionstore.AuthObject
		Ptr  *sessionstore.AuthObject
	}
	var logged bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logged, nil), slog.NewTextHandler(&logged, nil)} {
		slog.New(h).Info("nested",
			"slice", []sessionstore.AuthObject{a},
			"map", map[string]sessionstore.AuthObject{"server": a},
			"struct", holder{Name: "x", Auth: a, Ptr: &a},
			"group", slog.GroupValue(slog.Any("auth", a)))
	}
	assert.NotContains(t, logged.String(), "SECRET", logged.String())
	assert.Contains(t, logged.String(), "[redacted]")
}

func sampleAuth() sessionstore.AuthObject {
	return sessionstore.AuthObject{
		AccessToken:   "at-SECRET-access",
		RefreshToken:  "rt-SECRET-refresh",
		TokenType:     "Bearer",
		Expiry:        time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		Scope:         "global:all",
		Ref:           sessionstore.Ref{Type: "user", ID: 123},
		TransferToken: "tt-SECRET-transfer",
	}
}

func TestTokenConversions(t *testing.T) {
	a := sampleAuth()
	tok := a.Token()
	assert.True(t, a.AccessToken == tok.AccessToken && a.RefreshToken == tok.RefreshToken, "tokens carried over")
	assert.Equal(t, a.TokenType, tok.TokenType)
	assert.True(t, a.Expiry.Equal(tok.Expiry))
	assert.Equal(t, "global:all", tok.Extra("scope"))
	assert.True(t, a.Equal(sessionstore.FromToken(tok)), "round trip: got %v", sessionstore.FromToken(tok))
	assert.Equal(t, sessionstore.AuthObject{}, sessionstore.FromToken(nil))

	// A token response as x/oauth2 decodes it (JSON numbers are float64).
	raw := (&oauth2.Token{AccessToken: "x"}).WithExtra(map[string]any{
		"ref": map[string]any{"type": "app", "id": float64(77)}, "transfer_token": "tt", "scope": "s",
	})
	got := sessionstore.FromToken(raw)
	assert.Equal(t, sessionstore.Ref{Type: "app", ID: 77}, got.Ref)
	assert.Equal(t, "tt", got.TransferToken)
	assert.Equal(t, "s", got.Scope)
}

func TestAuthObjectJSONShape(t *testing.T) {
	data, err := json.Marshal(sessionstore.AuthObject{AccessToken: "a"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"access_token":"[redacted]"}`, string(data), "zero expiry and ref are omitted")
	a := sampleAuth()
	a.Extra = map[string]any{"id_token": "x", "b": 1}
	data, err = json.Marshal(a)
	require.NoError(t, err)
	assert.JSONEq(t, `{"access_token":"[redacted]","refresh_token":"[redacted]","token_type":"Bearer",
		"expiry":"2026-11-27T12:00:00Z","scope":"global:all","ref":{"type":"user","id":123},"transfer_token":"[redacted]",
		"extra_keys":["b","id_token"]}`, string(data))
}

func TestAuthObjectEqual(t *testing.T) {
	a := sampleAuth()
	a.Extra = map[string]any{"n": float64(1), "l": []any{"x"}}
	b := a.Clone()
	assert.True(t, a.Equal(b), "a clone is equal")
	b.Expiry = a.Expiry.In(time.FixedZone("x", 3600))
	assert.True(t, a.Equal(b), "the same instant in another zone is equal")
	assert.True(t, sessionstore.AuthObject{}.Equal(sessionstore.AuthObject{Extra: map[string]any{}}), "nil and empty Extra are equal")
	for name, change := range map[string]func(*sessionstore.AuthObject){
		"access":   func(x *sessionstore.AuthObject) { x.AccessToken += "x" },
		"refresh":  func(x *sessionstore.AuthObject) { x.RefreshToken = "" },
		"type":     func(x *sessionstore.AuthObject) { x.TokenType = "mac" },
		"expiry":   func(x *sessionstore.AuthObject) { x.Expiry = x.Expiry.Add(time.Nanosecond) },
		"scope":    func(x *sessionstore.AuthObject) { x.Scope = "" },
		"ref":      func(x *sessionstore.AuthObject) { x.Ref.ID++ },
		"transfer": func(x *sessionstore.AuthObject) { x.TransferToken = "" },
		"extra":    func(x *sessionstore.AuthObject) { x.Extra["l"].([]any)[0] = "y" },
	} {
		c := a.Clone()
		change(&c)
		assert.False(t, a.Equal(c), name)
	}
}

func TestAuthObjectCloneSharesNothing(t *testing.T) {
	a := sessionstore.AuthObject{Extra: map[string]any{"m": map[string]any{"k": "v"}, "l": []any{"x"}}}
	c := a.Clone()
	c.Extra["m"].(map[string]any)["k"] = "changed"
	c.Extra["l"].([]any)[0] = "changed"
	c.Extra["new"] = true
	assert.Equal(t, map[string]any{"m": map[string]any{"k": "v"}, "l": []any{"x"}}, a.Extra)
}
