package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

func init() {
	// health: wait for stdin to close (the start signal), then Token
	// twice; print "result FIRST SECOND", each one of: token, needs-login
	// (ErrNeedsLogin), provider (ErrNeedsLogin with the provider's
	// invalid_grant: this process marked it), error-CODE (a provider
	// error without ErrNeedsLogin).
	children["health"] = func(ctx context.Context, s *filestore.Store, c childSpec) error {
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		ts := sessionstore.TokenSource(ctx, s, c.name, sessionstore.ConfigRefresher(sessionstoretest.ConfigFor(c.url)))
		var words []string
		for range 2 {
			w, err := healthWord(ts)
			if err != nil {
				return err
			}
			words = append(words, w)
		}
		fmt.Println("result", words[0], words[1])
		return nil
	}
	// keepalive: wait for stdin to close, run KeepAlive for n ms, print
	// "done REFRESHED FAILED NEEDSLOGIN" (its events) and its error.
	children["keepalive"] = func(ctx context.Context, s *filestore.Store, c childSpec) error {
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		counts := map[sessionstore.EventKind]int{}
		kctx, cancel := context.WithTimeout(ctx, time.Duration(c.n)*time.Millisecond)
		defer cancel()
		err := sessionstore.KeepAlive(kctx, s, c.name, sessionstore.ConfigRefresher(sessionstoretest.ConfigFor(c.url)),
			sessionstore.WithEvents(func(e sessionstore.Event) {
				counts[e.Kind]++ // one goroutine: KeepAlive's
				if e.Err != nil {
					fmt.Fprintln(os.Stderr, "event:", e.Kind, e.Err)
				}
			}))
		fmt.Println("done", counts[sessionstore.EventRefreshed], counts[sessionstore.EventRefreshFailed],
			counts[sessionstore.EventNeedsLogin], err != nil)
		return err
	}
}

// healthWord names what one Token call of the health role returned.
func healthWord(ts oauth2.TokenSource) (string, error) {
	_, err := ts.Token()
	var re *oauth2.RetrieveError
	switch {
	case err == nil:
		return "token", nil
	case errors.Is(err, sessionstore.ErrNeedsLogin) && errors.As(err, &re) && re.ErrorCode == "invalid_grant":
		return "provider", nil
	case errors.Is(err, sessionstore.ErrNeedsLogin):
		return "needs-login", nil
	case errors.As(err, &re):
		return "error-" + re.ErrorCode, nil
	}
	return "", err
}

// Six processes on a dead refresh token: one request to the provider, one
// process marks the session, and every one of them gets ErrNeedsLogin;
// the record is marked, its tokens kept, and a new login clears it.
func TestProcessesDeadRefreshTokenKnownOnce(t *testing.T) {
	ctx := ctxT(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	srv.SetRefreshDelay(50 * time.Millisecond) // a wide window for a race
	dir, key := t.TempDir(), newKeyFile(t, false)
	s := openStore(t, dir, key)
	stored := login(t, s, srv, true)
	srv.RevokeRefreshTokens()
	before := srv.Stats()

	kids := startTogether(t, ctx, 6, childSpec{role: "health", dir: dir, key: key, name: "server", url: srv.URL})
	first := map[string]int{}
	for _, k := range kids {
		f := expectLine(t, k.out, "result")
		first[f[1]]++
		assert.Equal(t, "needs-login", f[2], "the second call is answered by the mark")
		require.NoError(t, k.cmd.Wait())
	}
	st := srv.Stats()
	assert.Equal(t, 1, st.TokenRequests-before.TokenRequests, "exactly one request to the provider for 6 processes")
	assert.Equal(t, 1, st.InvalidGrants-before.InvalidGrants)
	assert.Equal(t, map[string]int{"provider": 1, "needs-login": 5}, first, "one process marked it, five found the mark")

	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.False(t, got.Health.NeedsLogin.IsZero(), "the record is marked")
	assert.Equal(t, "invalid_grant", got.Health.Reason)
	assert.True(t, got.AccessToken == stored.AccessToken && got.RefreshToken == stored.RefreshToken, "its tokens are kept")

	// A new login clears it, for every process.
	login(t, s, srv, true)
	before = srv.Stats()
	kids = startTogether(t, ctx, 3, childSpec{role: "health", dir: dir, key: key, name: "server", url: srv.URL})
	for _, k := range kids {
		f := expectLine(t, k.out, "result")
		assert.Equal(t, []string{"token", "token"}, f[1:])
		require.NoError(t, k.cmd.Wait())
	}
	st = srv.Stats()
	assert.Equal(t, 1, st.Refreshes-before.Refreshes, "one refresh, shared")
	got, err = s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, got.Health.NeedsLogin.IsZero(), "the mark is gone")
	assert.False(t, got.Health.LastRefresh.IsZero(), "the refresh is recorded")
}

// A provider answering 5xx never marks the session: every process gets
// the provider's error, and a later refresh works.
func TestProcessesServerErrorNeverMarks(t *testing.T) {
	ctx := ctxT(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	dir, key := t.TempDir(), newKeyFile(t, false)
	s := openStore(t, dir, key)
	stored := login(t, s, srv, true)
	srv.SetFailing(true)

	kids := startTogether(t, ctx, 3, childSpec{role: "health", dir: dir, key: key, name: "server", url: srv.URL})
	for _, k := range kids {
		f := expectLine(t, k.out, "result")
		assert.Equal(t, []string{"error-temporarily_unavailable", "error-temporarily_unavailable"}, f[1:],
			"the provider's error, then the same from the backoff")
		require.NoError(t, k.cmd.Wait())
	}
	assert.Equal(t, 3, srv.Stats().Failures, "one request per process, none during its backoff")
	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, stored.Equal(got), "the session is untouched, not marked")

	srv.SetFailing(false)
	_, err = sessionstore.TokenSource(ctx, s, "server", sessionstore.ConfigRefresher(srv.Config())).Token()
	assert.NoError(t, err)
}

// KeepAlive on 3 processes with 2-second tokens: about one refresh per
// token lifetime for all of them together (not one per process), no
// invalid_grant, and every refresh the provider made is one process's
// EventRefreshed.
func TestProcessesKeepAliveRefreshOncePerExpiry(t *testing.T) {
	ctx := ctxT(t)
	const lifetime, run = 2 * time.Second, 6 * time.Second
	srv := sessionstoretest.NewProvider(lifetime)
	defer srv.Close()
	dir, key := t.TempDir(), newKeyFile(t, false)
	login(t, openStore(t, dir, key), srv, false)

	kids := startTogether(t, ctx, 3, childSpec{role: "keepalive", dir: dir, key: key, name: "server", url: srv.URL, n: int(run / time.Millisecond)})
	events := 0
	for _, k := range kids {
		f := expectLine(t, k.out, "done")
		n, _ := strconv.Atoi(f[1])
		events += n
		assert.Equal(t, []string{"0", "0", "false"}, f[2:], "no failure, no mark, KeepAlive returned nil")
		require.NoError(t, k.cmd.Wait())
	}
	st := srv.Stats()
	t.Logf("3 processes, %v with %v tokens: %d refreshes, %d invalid_grant, %d token requests", run, lifetime, st.Refreshes, st.InvalidGrants, st.TokenRequests)
	assert.Zero(t, st.InvalidGrants)
	assert.Equal(t, st.Refreshes, events, "each refresh is reported once, by the process that made it")
	// A token is due half its lifetime (1 s) after it was issued: about 6
	// refreshes in 6 s for the fleet; one per process would be about 18.
	assert.GreaterOrEqual(t, st.Refreshes, 3)
	assert.LessOrEqual(t, st.Refreshes, int(run/(lifetime/2))+3)
}
