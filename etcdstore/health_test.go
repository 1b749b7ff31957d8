package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

func init() {
	// health: wait for stdin to close (the start signal), then Token
	// twice; print "result FIRST SECOND", each one of: token, needs-login
	// (ErrNeedsLogin), provider (ErrNeedsLogin with the provider's
	// invalid_grant: this host marked it), error-CODE (a provider error
	// without ErrNeedsLogin).
	children["health"] = func(ctx context.Context, s *etcdstore.Store, c childSpec) error {
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		ts := sessionstore.TokenSource(ctx, s, c.name, sessionstore.ConfigRefresher(sessionstoretest.ConfigFor(c.url)))
		var words []string
		for range 2 {
			_, err := ts.Token()
			var re *oauth2.RetrieveError
			switch {
			case err == nil:
				words = append(words, "token")
			case errors.Is(err, sessionstore.ErrNeedsLogin) && errors.As(err, &re) && re.ErrorCode == "invalid_grant":
				words = append(words, "provider")
			case errors.Is(err, sessionstore.ErrNeedsLogin):
				words = append(words, "needs-login")
			case errors.As(err, &re):
				words = append(words, "error-"+re.ErrorCode)
			default:
				return err
			}
		}
		fmt.Println("result", words[0], words[1])
		return nil
	}
}

// Six hosts on a dead refresh token: one request to the provider, one
// host marks the session, every one of them gets ErrNeedsLogin; the
// record is marked (format version 3), its tokens kept, and a new login
// clears it.
func TestHostsDeadRefreshTokenKnownOnce(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	srv.SetRefreshDelay(50 * time.Millisecond) // a wide window for a race
	tok, err := srv.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	stored := sessionstore.FromToken(tok)
	stored.Expiry = time.Now().Add(-time.Minute)
	s := e.open(t)
	require.NoError(t, s.Set(ctx, "server", stored))
	srv.RevokeRefreshTokens()
	before := srv.Stats()

	const hosts = 6
	var kids []*child
	for range hosts {
		k := startChild(t, ctx, childSpec{role: "health", endpoints: []string{e.endpoint}, prefix: e.prefix, key: e.key, name: "server", url: srv.URL})
		k.expect(t, "ready")
		kids = append(kids, k)
	}
	for _, k := range kids {
		require.NoError(t, k.stdin.Close())
	}
	first := map[string]int{}
	for _, k := range kids {
		f := k.expect(t, "result")
		first[f[1]]++
		assert.Equal(t, "needs-login", f[2], "the second call is answered by the mark")
		require.NoError(t, k.cmd.Wait())
	}
	st := srv.Stats()
	t.Logf("provider: %d token requests, %d invalid_grant", st.TokenRequests-before.TokenRequests, st.InvalidGrants-before.InvalidGrants)
	assert.Equal(t, 1, st.TokenRequests-before.TokenRequests, "exactly one request to the provider for %d hosts", hosts)
	assert.Equal(t, map[string]int{"provider": 1, "needs-login": hosts - 1}, first, "one host marked it, the others found the mark")

	got, err := e.open(t).Get(ctx, "server")
	require.NoError(t, err)
	assert.False(t, got.Health.NeedsLogin.IsZero(), "the record is marked")
	assert.Equal(t, "invalid_grant", got.Health.Reason)
	assert.True(t, got.AccessToken == stored.AccessToken && got.RefreshToken == stored.RefreshToken, "its tokens are kept")
	ring, err := crypto.LoadKeyring(e.key)
	require.NoError(t, err)
	rec, err := etcdstore.ReadRecord(ctx, e.client(t), e.prefix, ring, "server")
	require.NoError(t, err)
	require.NoError(t, rec.Err)
	c := e.client(t)
	resp, err := c.Get(ctx, rec.Location)
	require.NoError(t, err)
	opened, _, err := envelope.Open(ring, resp.Kvs[0].Value, e.prefix, "server")
	require.NoError(t, err)
	assert.Equal(t, 3, opened.Version, "a marked session is sealed as version 3, which older readers refuse")

	// A new login clears it.
	tok, err = srv.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	require.NoError(t, s.Set(ctx, "server", sessionstore.FromToken(tok)))
	got2, err := sessionstore.TokenSource(ctx, e.open(t), "server", sessionstore.ConfigRefresher(srv.Config())).Token()
	require.NoError(t, err)
	assert.True(t, got2.AccessToken == tok.AccessToken, "the new login's token")
	resp, err = c.Get(ctx, rec.Location)
	require.NoError(t, err)
	opened, _, err = envelope.Open(ring, resp.Kvs[0].Value, e.prefix, "server")
	require.NoError(t, err)
	assert.Equal(t, 2, opened.Version, "an unmarked session is version 2 again")
}

// An invalid_grant for a refresh whose lock was lost (the lease ended
// while the provider answered, and another host refreshed with the same
// refresh token) marks nothing: the mark's write is fenced like any other,
// and the other host's session is used.
func TestLockLostInvalidGrantMarksNothing(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	mine := openOn(t, e.client(t), e.prefix, etcdstore.WithKeyFile(e.key))
	other := e.open(t)
	tok, err := srv.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	expired := sessionstore.FromToken(tok)
	expired.Expiry = time.Now().Add(-time.Minute)
	require.NoError(t, other.Set(ctx, "server", expired))

	var theirs *oauth2.Token
	refresh := func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		_, err := c.Revoke(ctx, clientv3.LeaseID(mine.LeaseID()))
		require.NoError(t, err)
		theirs, err = sessionstore.ConfigRefresher(srv.Config())(ctx, cur)
		require.NoError(t, err)
		require.NoError(t, other.Set(ctx, "server", sessionstore.FromToken(theirs)))
		return sessionstore.ConfigRefresher(srv.Config())(ctx, cur) // refused: invalid_grant
	}
	got, err := sessionstore.TokenSource(ctx, mine, "server", refresh).Token()
	require.NoError(t, err, "the other host's session is used")
	assert.True(t, got.AccessToken == theirs.AccessToken)
	a, err := other.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, a.Health.NeedsLogin.IsZero(), "not marked")
	assert.Equal(t, 1, srv.Stats().InvalidGrants)
}
