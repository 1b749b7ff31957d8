package sessionstore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
)

func TestReadPodioJSFile(t *testing.T) {
	dir := t.TempDir()
	copyPodio := func(name string) string {
		data, err := os.ReadFile(filepath.Join("testdata", "podiojs", name))
		require.NoError(t, err)
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	p := copyPodio("password.json")
	mtime := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	require.NoError(t, os.Chtimes(p, mtime, mtime))
	a, err := sessionstore.ReadPodioJSFile(p)
	require.NoError(t, err)
	assert.Equal(t, sessionstore.AuthObject{
		AccessToken:   "podio-test-access-token",
		RefreshToken:  "podio-test-refresh-token",
		Expiry:        mtime.Add(8 * time.Hour),
		Ref:           sessionstore.Ref{Type: "user", ID: 1},
		TransferToken: "podio-test-transfer-token",
	}, a)

	a, err = sessionstore.ReadPodioJSFile(copyPodio("app.json"))
	require.NoError(t, err)
	assert.Equal(t, sessionstore.Ref{Type: "app", ID: 12345}, a.Ref)

	for _, cleared := range []string{"cleared.json", "empty.json"} {
		_, err = sessionstore.ReadPodioJSFile(copyPodio(cleared))
		assert.ErrorIs(t, err, sessionstore.ErrNotFound, cleared)
	}
	_, err = sessionstore.ReadPodioJSFile(copyPodio("malformed.json"))
	require.Error(t, err)
	assert.NotErrorIs(t, err, sessionstore.ErrNotFound)
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
		_, err := sessionstore.ReadPodioJSFile(p)
		assert.Error(t, err, name)
		assert.NotContains(t, fmt.Sprint(err), "podio-test-x", name)
	}
	_, err = sessionstore.ReadPodioJSFile(filepath.Join(dir, "missing.json"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// A symlink or a FIFO in place of the file is refused at once, without
// blocking on the FIFO.
func TestReadPodioJSFileRefusesSymlinkAndFIFO(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no symlinks or FIFOs for unprivileged users")
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "target.json")
	require.NoError(t, os.WriteFile(target, []byte(`{"accessToken":"podio-test-x"}`), 0o600))
	link := filepath.Join(dir, "link.json")
	require.NoError(t, os.Symlink(target, link))
	_, err := sessionstore.ReadPodioJSFile(link)
	assert.ErrorContains(t, err, "not a regular file")
	assert.ErrorContains(t, err, link, "names the file")

	fifo := filepath.Join(dir, "fifo.json")
	require.NoError(t, mkfifo(fifo))
	done := make(chan error, 1)
	go func() { _, err := sessionstore.ReadPodioJSFile(fifo); done <- err }()
	select {
	case err := <-done:
		assert.ErrorContains(t, err, "not a regular file")
	case <-time.After(10 * time.Second):
		t.Fatal("ReadPodioJSFile blocked on a FIFO")
	}
}

// Only an empty file or an empty object is a cleared session
// (ErrNotFound); any other content that is not a podio-js session is an
// error, so that a migration never takes a file it does not understand for
// a cleared one.
func TestReadPodioJSFileNotASession(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	for name, content := range map[string]string{
		"cleared":       "{}",
		"cleared space": " { \n } \n",
		"empty":         "",
		"blank":         " \n\t",
	} {
		_, err := sessionstore.ReadPodioJSFile(write(name, content))
		assert.ErrorIs(t, err, sessionstore.ErrNotFound, name)
	}
	for name, content := range map[string]string{
		"unknown field":  `{"foo":1}`,
		"oauth response": `{"access_token":"podio-test-x","refresh_token":"podio-test-y","expires_in":3600,"token_type":"bearer"}`,
		"empty tokens":   `{"accessToken":"","refreshToken":""}`,
		"null token":     `{"accessToken":null,"expiresIn":3600}`,
		"null":           `null`,
		"string":         `"podio-test-x"`,
		"number":         `42`,
	} {
		p := write(name, content)
		_, err := sessionstore.ReadPodioJSFile(p)
		require.Error(t, err, name)
		assert.NotErrorIs(t, err, sessionstore.ErrNotFound, name)
		assert.Contains(t, err.Error(), strconv.Quote(p), "%s: names the file", name)
		assert.NotContains(t, err.Error(), "podio-test-", name)
	}
}

// The file's name is quoted in every error, so that a hostile one
// (terminal escape sequences) never reaches a log or a terminal raw.
func TestReadPodioJSFileQuotesPath(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows file names cannot hold control characters")
	}
	dir := t.TempDir()
	for name, content := range map[string]*string{
		"\x1b[2J\x1b[31mmalformed\x1b[0m.json": ptr(`{"accessToken":`),
		"\x1b[2Junknown.json":                  ptr(`{"foo":1}`),
		"\x1b[2Jcleared.json":                  ptr(`{}`),
		"\x1b[2Jmissing.json":                  nil,
		"\x1b[2Jrange.json":                    ptr(`{"accessToken":"podio-test-x","expiresIn":-5}`),
	} {
		p := filepath.Join(dir, name)
		if content != nil {
			require.NoError(t, os.WriteFile(p, []byte(*content), 0o600))
		}
		_, err := sessionstore.ReadPodioJSFile(p)
		require.Error(t, err, "%q", name)
		assert.NotContains(t, err.Error(), "\x1b", "%q: the name is quoted", name)
		assert.Contains(t, err.Error(), strconv.Quote(p), "%q", name)
	}
	_, err := sessionstore.ReadPodioJSFile(filepath.Join(dir, "\x1b[2Jmissing.json"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func ptr[T any](v T) *T { return &v }
