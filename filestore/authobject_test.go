package filestore_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore/filestore"
)

func TestAuthObjectNeverPrintsTokens(t *testing.T) {
	a := sampleAuth()
	a.Extra = map[string]any{"id_token": "idt-SECRET"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("session", "auth", a)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("session", "auth", a)
	for _, out := range []string{
		fmt.Sprint(a), fmt.Sprintf("%v|%+v|%#v|%s|%q", a, a, a, a, a), fmt.Sprintf("%v", &a), fmt.Sprintf("%+v", []filestore.AuthObject{a}),
		logged.String(),
	} {
		assert.NotContains(t, out, "SECRET", out)
	}
	assert.Contains(t, fmt.Sprint(a), "[redacted]")
	assert.Contains(t, fmt.Sprint(a), "user:123", "non-secret fields still show")
	assert.Contains(t, logged.String(), "id_token", "extra keys show, not their values")

	// JSON, which the store writes (encrypted), keeps everything.
	data, err := json.Marshal(a)
	require.NoError(t, err)
	assert.Contains(t, string(data), "at-SECRET-access")
}

func TestTokenConversions(t *testing.T) {
	a := sampleAuth()
	tok := a.Token()
	assert.Equal(t, a.AccessToken, tok.AccessToken)
	assert.Equal(t, a.RefreshToken, tok.RefreshToken)
	assert.Equal(t, a.TokenType, tok.TokenType)
	assert.True(t, a.Expiry.Equal(tok.Expiry))
	assert.Equal(t, "global:all", tok.Extra("scope"))
	assert.Equal(t, a, filestore.FromToken(tok), "round trip")
	assert.Equal(t, filestore.AuthObject{}, filestore.FromToken(nil))

	// A token response as x/oauth2 decodes it (JSON numbers are float64).
	raw := (&oauth2.Token{AccessToken: "x"}).WithExtra(map[string]any{
		"ref": map[string]any{"type": "app", "id": float64(77)}, "transfer_token": "tt", "scope": "s",
	})
	got := filestore.FromToken(raw)
	assert.Equal(t, filestore.Ref{Type: "app", ID: 77}, got.Ref)
	assert.Equal(t, "tt", got.TransferToken)
	assert.Equal(t, "s", got.Scope)
}

func TestAuthObjectJSONShape(t *testing.T) {
	data, err := json.Marshal(filestore.AuthObject{AccessToken: "a"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"access_token":"a"}`, string(data), "zero expiry and ref are omitted")
	data, err = json.Marshal(sampleAuth())
	require.NoError(t, err)
	assert.JSONEq(t, `{"access_token":"at-SECRET-access","refresh_token":"rt-SECRET-refresh","token_type":"Bearer",
		"expiry":"2026-11-27T12:00:00Z","scope":"global:all","ref":{"type":"user","id":123},"transfer_token":"tt-SECRET-transfer"}`, string(data))
}

func TestReadPodioJSFile(t *testing.T) {
	dir := t.TempDir()
	copyPodio := func(name string) string {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "podiojs", name))
		require.NoError(t, err)
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	p := copyPodio("password.json")
	mtime := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	require.NoError(t, os.Chtimes(p, mtime, mtime))
	a, err := filestore.ReadPodioJSFile(p)
	require.NoError(t, err)
	assert.Equal(t, filestore.AuthObject{
		AccessToken:   "podio-test-access-token",
		RefreshToken:  "podio-test-refresh-token",
		Expiry:        mtime.Add(8 * time.Hour),
		Ref:           filestore.Ref{Type: "user", ID: 1},
		TransferToken: "podio-test-transfer-token",
	}, a)

	a, err = filestore.ReadPodioJSFile(copyPodio("app.json"))
	require.NoError(t, err)
	assert.Equal(t, filestore.Ref{Type: "app", ID: 12345}, a.Ref)

	for _, cleared := range []string{"cleared.json", "empty.json"} {
		_, err = filestore.ReadPodioJSFile(copyPodio(cleared))
		assert.ErrorIs(t, err, filestore.ErrNotFound, cleared)
	}
	_, err = filestore.ReadPodioJSFile(copyPodio("malformed.json"))
	require.Error(t, err)
	assert.NotErrorIs(t, err, filestore.ErrNotFound)
	assert.NotContains(t, err.Error(), "podio-test-access-token", "never quotes the file")

	for name, content := range map[string]string{
		"array":       `[1]`,
		"trailing":    `{"accessToken":"podio-test-x"} {}`,
		"negative":    `{"accessToken":"podio-test-x","expiresIn":-1}`,
		"fraction id": `{"accessToken":"podio-test-x","ref":{"type":"user","id":1.5}}`,
		"only rt":     `{"refreshToken":"podio-test-x"}`,
	} {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		_, err := filestore.ReadPodioJSFile(p)
		assert.Error(t, err, name)
		assert.NotContains(t, fmt.Sprint(err), "podio-test-x", name)
	}
	_, err = filestore.ReadPodioJSFile(filepath.Join(dir, "missing.json"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
