package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

func setup(t *testing.T) (srv *sessionstoretest.Provider, base []string, dir, key string) {
	t.Helper()
	srv = sessionstoretest.NewProvider(time.Hour)
	t.Cleanup(srv.Close)
	tmp := t.TempDir()
	dir, key = filepath.Join(tmp, "sessions"), filepath.Join(tmp, "key")
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	require.NoError(t, crypto.CreateKeyFile(key, k))
	t.Setenv(clientSecretEnv, sessionstoretest.ClientSecret)
	t.Setenv(passwordEnv, "")
	t.Setenv(appTokenEnv, "")
	base = []string{"-dir", dir, "-key", key, "-client-id", sessionstoretest.ClientID,
		"-token-url", srv.TokenURL(), "-api-url", srv.APIURL()}
	return srv, base, dir, key
}

// secretFile writes secret to a new file, mode 0600, and returns its path.
func secretFile(t *testing.T, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(path, []byte(secret+"\n"), 0o600))
	return path
}

// expire makes the stored session of authType expired, and returns the
// store it used.
func expire(t *testing.T, dir, key, authType string) *filestore.Store {
	t.Helper()
	s, err := filestore.Open(dir, filestore.WithKeyFile(key))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	_, err = s.Update(context.Background(), authType, func(a sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		a.Expiry = time.Now().Add(-time.Minute)
		return a, nil
	})
	require.NoError(t, err)
	return s
}

func TestPasswordFlowAuthenticatesOnceThenReuses(t *testing.T) {
	srv, base, dir, key := setup(t)
	t.Setenv(passwordEnv, sessionstoretest.Password)
	args := append(base, "-username", sessionstoretest.Username)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), args, &out))
	assert.Contains(t, out.String(), `session stored as "password"`)
	assert.Contains(t, out.String(), "API call OK as user:1")
	out.Reset()
	require.NoError(t, run(context.Background(), args, &out))
	assert.Contains(t, out.String(), "reusing the stored session")
	assert.Equal(t, 1, srv.Stats().Logins, "the second run does not log in again")

	// When the session expires, it is refreshed with the refresh token.
	expire(t, dir, key, "password")
	require.NoError(t, run(context.Background(), args, &out))
	assert.Equal(t, 1, srv.Stats().Refreshes)
	assert.Equal(t, 1, srv.Stats().Logins)
}

func TestAppFlowAsRefresher(t *testing.T) {
	srv, base, dir, key := setup(t)
	t.Setenv(appTokenEnv, sessionstoretest.AppToken)
	args := append(base, "-app-id", sessionstoretest.AppID)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), args, &out))
	assert.Contains(t, out.String(), `session stored as "app:12345"`)
	assert.Contains(t, out.String(), "API call OK as app:12345")

	// Expired: the app refresher authenticates again (grant_type=app).
	s := expire(t, dir, key, "app:12345")
	out.Reset()
	require.NoError(t, run(context.Background(), args, &out))
	assert.Contains(t, out.String(), "reusing the stored session")
	assert.Equal(t, 2, srv.Stats().Logins, "one app grant at first, one when the session expired")
	got, err := s.Get(context.Background(), "app:12345")
	require.NoError(t, err)
	assert.Equal(t, sessionstore.Ref{Type: "app", ID: 12345}, got.Ref)
}

func TestWrongAppTokenFails(t *testing.T) {
	_, base, _, _ := setup(t)
	t.Setenv(appTokenEnv, "wrong")
	err := run(context.Background(), append(base, "-app-id", sessionstoretest.AppID), &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid_grant")
}

func TestEndpointsArePodios(t *testing.T) {
	cfg := Config("id", "secret", PodioTokenURL)
	assert.Equal(t, "https://podio.com/oauth/authorize", cfg.Endpoint.AuthURL)
	assert.Equal(t, "https://api.podio.com/oauth/token", cfg.Endpoint.TokenURL)
}

// Secrets are never flags (a command line is visible to every user in ps):
// the client secret, the password and the app token come from the
// environment or from a file, and a flag carrying one is refused.
func TestSecretsComeFromTheEnvironmentOrAFile(t *testing.T) {
	srv, base, _, _ := setup(t)
	for _, flag := range []string{"-client-secret", "-password", "-app-token"} {
		err := run(context.Background(), append(base, "-username", sessionstoretest.Username, flag, "hunter2-secret"), &bytes.Buffer{})
		require.Error(t, err, flag)
		assert.ErrorAs(t, err, new(*usageError))
		assert.NotContains(t, err.Error(), "hunter2-secret")
	}

	// No password anywhere: say where it goes.
	err := run(context.Background(), append(base, "-username", sessionstoretest.Username), &bytes.Buffer{})
	require.ErrorAs(t, err, new(*usageError))
	assert.Contains(t, err.Error(), "$"+passwordEnv)

	// From files, the environment empty.
	t.Setenv(clientSecretEnv, "")
	args := append(base, "-client-secret-file", secretFile(t, sessionstoretest.ClientSecret),
		"-username", sessionstoretest.Username, "-password-file", secretFile(t, sessionstoretest.Password))
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), args, &out))
	assert.Contains(t, out.String(), "API call OK as user:1")
	assert.Equal(t, 1, srv.Stats().Logins)

	// A file others can read is refused, without its contents.
	if os.PathSeparator == '/' {
		open := secretFile(t, "hunter2-secret")
		require.NoError(t, os.Chmod(open, 0o644))
		err := run(context.Background(), append(base, "-client-secret-file", open, "-username", sessionstoretest.Username), &bytes.Buffer{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "accessible by group or others")
		assert.NotContains(t, err.Error(), "hunter2-secret")
	}

	var help bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-h"}, &help))
	assert.Contains(t, help.String(), "$"+clientSecretEnv)
	assert.Contains(t, help.String(), "-password-file")
}
