package filestore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// login stores a session obtained with the password grant; expired makes
// its access token already expired (a cron job starting late).
func login(t *testing.T, s *filestore.Store, srv *sessionstoretest.Provider, expired bool) sessionstore.AuthObject {
	t.Helper()
	tok, err := srv.Config().PasswordCredentialsToken(ctxT(t), sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	a := sessionstore.FromToken(tok)
	if expired {
		srv.ExpireAll()
		a.Expiry = time.Now().Add(-time.Minute)
	}
	require.NoError(t, s.Set(ctxT(t), "server", a))
	return a
}

// callAPI makes one API request through ts.
func callAPI(ctx context.Context, ts oauth2.TokenSource, url string) error {
	return sessionstoretest.CallAPI(ctx, oauth2.NewClient(ctx, ts), url)
}

func TestTokenSourceValidTokenNeedsNoRefresh(t *testing.T) {
	ctx := ctxT(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	s := openStore(t, t.TempDir(), newKeyFile(t, false))
	stored := login(t, s, srv, false)
	ts := sessionstore.TokenSource(ctx, s, "server", sessionstore.ConfigRefresher(srv.Config()))
	warm(t, s, "server", true)
	for range 5 {
		tok, err := ts.Token()
		require.NoError(t, err)
		assert.True(t, tok.AccessToken == stored.AccessToken, "the stored access token")
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ts.Token(); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs, "a valid cached token costs no I/O (a file read allocates)")
	assert.Zero(t, srv.Stats().Refreshes)
	require.NoError(t, callAPI(ctx, ts, srv.APIURL()))
}

func TestTokenSourceRefreshesAndPersists(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		srv := sessionstoretest.NewProvider(time.Hour)
		defer srv.Close()
		dir, key := t.TempDir(), newKeyFile(t, false)
		s := openStore(t, dir, key, m.opts...)
		old := login(t, s, srv, true)
		ts := sessionstore.TokenSource(ctx, s, "server", sessionstore.ConfigRefresher(srv.Config()))
		tok, err := ts.Token()
		require.NoError(t, err)
		assert.True(t, old.AccessToken != tok.AccessToken, "old.AccessToken != tok.AccessToken")
		assert.True(t, old.RefreshToken != tok.RefreshToken, "the provider rotated the refresh token")
		assert.Equal(t, 1, srv.Stats().Refreshes)
		require.NoError(t, callAPI(ctx, ts, srv.APIURL()))

		// Persisted: a new process starts with the refreshed session.
		fresh := openStore(t, dir, key, m.opts...)
		got, err := fresh.Get(ctx, "server")
		require.NoError(t, err)
		assert.True(t, tok.AccessToken == got.AccessToken, "tok.AccessToken == got.AccessToken")
		assert.True(t, tok.RefreshToken == got.RefreshToken, "tok.RefreshToken == got.RefreshToken")
		assert.Equal(t, sessionstore.Ref{Type: "user", ID: 1}, got.Ref, "Podio's ref from the token response")
	})
}

func TestTokenSourceNoSessionIsNotFound(t *testing.T) {
	s := openStore(t, t.TempDir(), newKeyFile(t, false))
	_, err := sessionstore.TokenSource(ctxT(t), s, "server", func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		t.Error("no refresh without a session")
		return nil, errors.New("unreachable")
	}).Token()
	assert.ErrorIs(t, err, sessionstore.ErrNotFound)
}

func TestTokenSourceFailedRefreshKeepsSession(t *testing.T) {
	ctx := ctxT(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	dir, key := t.TempDir(), newKeyFile(t, false)
	s := openStore(t, dir, key)
	old := login(t, s, srv, true)
	before, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)

	srv.SetFailing(true)
	ts := sessionstore.TokenSource(ctx, s, "server", sessionstore.ConfigRefresher(srv.Config()))
	_, err = ts.Token()
	require.Error(t, err)
	var re *oauth2.RetrieveError
	require.ErrorAs(t, err, &re, "the provider's error is reachable")
	assert.Equal(t, http.StatusServiceUnavailable, re.Response.StatusCode)
	assertNoSecret(t, err)
	after, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	assert.Equal(t, before, after, "a failed refresh never touches the stored session")
	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, old.RefreshToken == got.RefreshToken, "old.RefreshToken == got.RefreshToken")

	srv.SetFailing(false)
	// ts backs off for a second after its failure; a new source does not.
	tok, err := sessionstore.TokenSource(ctx, s, "server", sessionstore.ConfigRefresher(srv.Config())).Token()
	require.NoError(t, err, "after recovery it refreshes with the kept refresh token")
	assert.True(t, old.AccessToken != tok.AccessToken, "old.AccessToken != tok.AccessToken")
}

func TestTokenSourceKeepsRefreshTokenWhenResponseHasNone(t *testing.T) {
	ctx := ctxT(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	s := openStore(t, t.TempDir(), newKeyFile(t, false))
	old := login(t, s, srv, true)
	srv.SetOmitRefreshToken(true)
	// A refresher that returns exactly what the endpoint sent, so the
	// store, not x/oauth2, must keep the refresh token.
	raw := func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		tok, err := sessionstore.ConfigRefresher(srv.Config())(ctx, cur)
		if err == nil {
			tok.RefreshToken = ""
		}
		return tok, err
	}
	tok, err := sessionstore.TokenSource(ctx, s, "server", raw).Token()
	require.NoError(t, err)
	assert.True(t, old.RefreshToken == tok.RefreshToken, "old.RefreshToken == tok.RefreshToken")
	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, old.RefreshToken == got.RefreshToken, "the stored refresh token is kept")
	assert.True(t, old.AccessToken != got.AccessToken, "old.AccessToken != got.AccessToken")
}

func TestTokenSourceUnchangedTokenIsNotRewritten(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	s := openStore(t, dir, newKeyFile(t, false))
	a := sessionstore.AuthObject{AccessToken: "a", RefreshToken: "r", Expiry: time.Now().Add(-time.Minute)}
	require.NoError(t, s.Set(ctx, "server", a))
	before, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	same := func(_ context.Context, cur *oauth2.Token) (*oauth2.Token, error) { return cur, nil }
	tok, err := sessionstore.TokenSource(ctx, s, "server", same).Token()
	require.NoError(t, err)
	assert.Equal(t, "a", tok.AccessToken)
	after, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	assert.Equal(t, before, after)
}

// A token whose whole lifetime is shorter than the skew is not refreshed
// on every call.
func TestTokenSourceShortLivedTokenNotRefreshedEveryCall(t *testing.T) {
	ctx := ctxT(t)
	srv := sessionstoretest.NewProvider(4 * time.Second)
	defer srv.Close()
	s := openStore(t, t.TempDir(), newKeyFile(t, false))
	login(t, s, srv, true)
	ts := sessionstore.TokenSource(ctx, s, "server", sessionstore.ConfigRefresher(srv.Config()), sessionstore.WithExpirySkew(time.Minute))
	for range 20 {
		_, err := ts.Token()
		require.NoError(t, err)
	}
	assert.Equal(t, 1, srv.Stats().Refreshes, "one refresh, not one per call")
}

func init() {
	// token: wait for stdin to close (the start signal), get a token,
	// call the API once, print the access token.
	children["token"] = func(ctx context.Context, s *filestore.Store, c childSpec) error {
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		cfg := sessionstoretest.ConfigFor(c.url)
		ts := sessionstore.TokenSource(ctx, s, c.name, sessionstore.ConfigRefresher(cfg))
		tok, err := ts.Token()
		if err != nil {
			var re *oauth2.RetrieveError
			if errors.As(err, &re) {
				fmt.Println("refresh-error", re.ErrorCode, re.Response.StatusCode)
				return nil
			}
			return err
		}
		if err := callAPI(ctx, ts, c.url+"/api/me"); err != nil {
			return err
		}
		fmt.Println("token", tok.AccessToken)
		return nil
	}
	// api-loop: call the API through the shared token source for n ms.
	children["api-loop"] = func(ctx context.Context, s *filestore.Store, c childSpec) error {
		cfg := sessionstoretest.ConfigFor(c.url)
		ts := sessionstore.TokenSource(ctx, s, c.name, sessionstore.ConfigRefresher(cfg))
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		ok, failed := 0, 0
		for end := time.Now().Add(time.Duration(c.n) * time.Millisecond); time.Now().Before(end); {
			if err := callAPI(ctx, ts, c.url+"/api/me"); err != nil {
				failed++
				fmt.Fprintln(os.Stderr, "api:", err)
			} else {
				ok++
			}
			time.Sleep(5 * time.Millisecond) // a client's pace, not synchronisation
		}
		fmt.Println("done", ok, failed)
		return nil
	}
}

// startChildren starts n children that each print "ready" and then wait
// for their stdin to close, and waits for them to be ready.
func startChildren(t *testing.T, ctx context.Context, n int, c childSpec) []*bufioChild {
	t.Helper()
	var kids []*bufioChild
	for range n {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), c.env()...)
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = testWriter{t}
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		k := &bufioChild{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
		expectLine(t, k.out, "ready")
		kids = append(kids, k)
	}
	return kids
}

// startTogether starts n children and releases them all at once.
func startTogether(t *testing.T, ctx context.Context, n int, c childSpec) []*bufioChild {
	t.Helper()
	kids := startChildren(t, ctx, n, c)
	for _, k := range kids {
		require.NoError(t, k.stdin.Close())
	}
	return kids
}

func TestProcessesRefreshOnceTogether(t *testing.T) {
	ctx := ctxT(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	srv.SetRefreshDelay(50 * time.Millisecond) // a wide window for a race
	dir, key := t.TempDir(), newKeyFile(t, false)
	login(t, openStore(t, dir, key), srv, true)

	kids := startTogether(t, ctx, 8, childSpec{role: "token", dir: dir, key: key, name: "server", url: srv.URL})
	tokens := map[string]int{}
	for _, k := range kids {
		f := expectLine(t, k.out, "token")
		tokens[f[1]]++
		require.NoError(t, k.cmd.Wait())
	}
	st := srv.Stats()
	assert.Equal(t, 1, st.Refreshes, "exactly one refresh for 8 processes")
	assert.Zero(t, st.InvalidGrants)
	assert.Len(t, tokens, 1, "all 8 use the same new access token: %v", tokens)
}

func TestProcessesLoopOnShortLivedTokens(t *testing.T) {
	ctx := ctxT(t)
	srv := sessionstoretest.NewProvider(time.Second)
	defer srv.Close()
	dir, key := t.TempDir(), newKeyFile(t, false)
	login(t, openStore(t, dir, key), srv, false)

	kids := startTogether(t, ctx, 4, childSpec{role: "api-loop", dir: dir, key: key, name: "server", url: srv.URL, n: 3000})
	calls := 0
	for _, k := range kids {
		f := expectLine(t, k.out, "done")
		ok, _ := strconv.Atoi(f[1])
		failed, _ := strconv.Atoi(f[2])
		assert.Zero(t, failed, "every API call succeeds")
		assert.Positive(t, ok)
		calls += ok
		require.NoError(t, k.cmd.Wait())
	}
	st := srv.Stats()
	assert.Zero(t, st.InvalidGrants, "no refresh token was used twice")
	assert.Zero(t, st.APIRefused)
	assert.GreaterOrEqual(t, st.Refreshes, 2, "1-second tokens over 3 s were refreshed")
	t.Logf("4 processes, 3 s, 1 s tokens: %d API calls, %d refreshes, %d invalid_grant", calls, st.Refreshes, st.InvalidGrants)
}

func TestProcessesFailingEndpointThenRecovery(t *testing.T) {
	ctx := ctxT(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	dir, key := t.TempDir(), newKeyFile(t, false)
	old := login(t, openStore(t, dir, key), srv, true)
	before, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)

	srv.SetFailing(true)
	k := startTogether(t, ctx, 1, childSpec{role: "token", dir: dir, key: key, name: "server", url: srv.URL})[0]
	f := expectLine(t, k.out, "refresh-error")
	assert.Equal(t, "503", f[2])
	require.NoError(t, k.cmd.Wait())
	after, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	assert.Equal(t, before, after, "the stored session is as it was")

	srv.SetFailing(false)
	k = startTogether(t, ctx, 1, childSpec{role: "token", dir: dir, key: key, name: "server", url: srv.URL})[0]
	f = expectLine(t, k.out, "token")
	assert.True(t, old.AccessToken != f[1], "old.AccessToken != f[1]")
	require.NoError(t, k.cmd.Wait())
	assert.Equal(t, 1, srv.Stats().Refreshes)
	assert.Zero(t, srv.Stats().InvalidGrants)
}

func TestProcessesResponseWithoutRefreshTokenKeepsIt(t *testing.T) {
	ctx := ctxT(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	srv.SetOmitRefreshToken(true)
	dir, key := t.TempDir(), newKeyFile(t, false)
	old := login(t, openStore(t, dir, key), srv, true)
	k := startTogether(t, ctx, 1, childSpec{role: "token", dir: dir, key: key, name: "server", url: srv.URL})[0]
	expectLine(t, k.out, "token")
	require.NoError(t, k.cmd.Wait())
	got, err := openStore(t, dir, key).Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, old.RefreshToken == got.RefreshToken, "old.RefreshToken == got.RefreshToken")
	assert.True(t, old.AccessToken != got.AccessToken, "old.AccessToken != got.AccessToken")
}

// One TokenSource used by many goroutines refreshes once.
func TestTokenSourceConcurrentGoroutinesRefreshOnce(t *testing.T) {
	ctx := ctxT(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	srv.SetRefreshDelay(20 * time.Millisecond)
	s := openStore(t, t.TempDir(), newKeyFile(t, false))
	login(t, s, srv, true)
	ts := sessionstore.TokenSource(ctx, s, "server", sessionstore.ConfigRefresher(srv.Config()))
	var wg sync.WaitGroup
	tokens := make([]string, 16)
	for i := range tokens {
		wg.Go(func() {
			tok, err := ts.Token()
			if assert.NoError(t, err) {
				tokens[i] = tok.AccessToken
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, srv.Stats().Refreshes)
	for _, at := range tokens {
		assert.Equal(t, tokens[0], at)
	}
}

// A nil Refresher is an error when a refresh is needed, not a panic.
func TestTokenSourceNilRefresherIsAnError(t *testing.T) {
	s := openStore(t, t.TempDir(), newKeyFile(t, false))
	require.NoError(t, s.Set(ctxT(t), "server", sessionstore.AuthObject{AccessToken: "old", Expiry: time.Now().Add(-time.Minute)}))
	var tok *oauth2.Token
	var err error
	require.NotPanics(t, func() { tok, err = sessionstore.TokenSource(ctxT(t), s, "server", nil).Token() })
	assert.Nil(t, tok)
	assert.ErrorContains(t, err, "no Refresher")

	require.NoError(t, s.Set(ctxT(t), "server", sessionstore.AuthObject{AccessToken: "valid", Expiry: time.Now().Add(time.Hour)}))
	tok, err = sessionstore.TokenSource(ctxT(t), s, "server", nil).Token()
	require.NoError(t, err, "a valid token needs no Refresher")
	assert.Equal(t, "valid", tok.AccessToken)
}
