package pgstore_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/pgtest"
	"github.com/sessionstore/sessionstore/pgstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// On a primary with a synchronous standby, processes (each with a pool on
// both servers, target_session_attrs=read-write) refresh a short-lived
// token at a provider that rotates refresh tokens, and increment a
// counter; the primary is SIGKILLed mid-load and the standby promoted. No
// acknowledged increment is lost, no refresh token is used twice, and
// the refreshes go on after the failover.
//
// The primary is killed just after a refresh was stored, so that no
// refresh is between the provider's answer and its commit when the
// primary dies: such a refresh's new refresh token would die with the
// primary's unreplicated commit, a loss no store can prevent (the
// provider rotated the token; the fleet never learned the new one).
func TestFailoverToSynchronousStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("a primary and a standby")
	}
	ctx := ctxT(t)
	primary, standby := pgtest.StartWithStandby(t)
	url := pgtest.MultiHostURL(primary, standby)
	const ns = "failover"
	key := newKeyFile(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.Open(ctx, pool, ns, pgstore.WithKeyFile(key), pgstore.WithoutListen())
	require.NoError(t, err)
	defer s.Close()

	const lifetime = 6 * time.Second // refreshed every 3 s
	srv := sessionstoretest.NewProvider(lifetime)
	defer srv.Close()
	srv.SetRefreshDelay(20 * time.Millisecond)
	tok, err := srv.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	a := sessionstore.FromToken(tok)
	a.Expiry = time.Now().Add(-time.Minute)
	require.NoError(t, s.Set(ctx, "server", a))

	const procs = 4
	kids := startChildren(t, ctx, procs, childSpec{role: "fleet", url: url, ns: ns, key: key, name: "server", oauth: srv.URL, ttl: 2 * time.Second})
	for _, k := range kids {
		_, err := k.stdin.Write([]byte("go\n"))
		require.NoError(t, err)
	}
	get := func(name string) (sessionstore.AuthObject, bool) {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		a, err := s.Get(gctx, name)
		return a, err == nil
	}
	count := func() int {
		a, ok := get("server-counter")
		if !ok {
			return -1 // during the failover
		}
		n, _ := strconv.Atoi(a.AccessToken)
		return n
	}
	waitFor(t, "work under way", func() bool { return count() >= 10 && srv.Stats().Refreshes >= 1 })

	// Just after the next refresh was stored, kill the primary.
	cur, ok := get("server")
	require.True(t, ok)
	waitFor(t, "a refresh stored", func() bool {
		a, ok := get("server")
		return ok && a.AccessToken != cur.AccessToken
	})
	atKill, refreshesAtKill := count(), srv.Stats().Refreshes
	require.NoError(t, primary.Kill())
	killedAt := time.Now()
	standby.Promote(t)
	t.Logf("killed the primary at count %d after %d refreshes; promoted the standby in %v", atKill, refreshesAtKill, time.Since(killedAt).Round(time.Millisecond))
	waitFor(t, "work after the failover", func() bool {
		return count() >= atKill+20 && srv.Stats().Refreshes >= refreshesAtKill+2
	})

	for _, k := range kids {
		require.NoError(t, k.stdin.Close())
	}
	var ok2, failed, incs, unknown int
	for i, k := range kids {
		for {
			require.True(t, k.out.Scan(), "child %d ended early", i+1)
			f := strings.Fields(k.out.Text())
			require.NotEmpty(t, f)
			if f[0] == "error" {
				msg := strings.Join(f[1:], " ")
				t.Logf("process %d: error: %s", i+1, msg)
				assert.NotContains(t, msg, "invalid_grant")
				continue
			}
			require.Equal(t, "done", f[0])
			n := make([]int, 4)
			for j := range n {
				n[j], err = strconv.Atoi(f[j+1])
				require.NoError(t, err)
			}
			ok2, failed, incs, unknown = ok2+n[0], failed+n[1], incs+n[2], unknown+n[3]
			break
		}
		require.NoError(t, k.cmd.Wait())
	}
	st := srv.Stats()
	fresh, err := pgstore.Open(ctx, standby.Pool(t), ns, pgstore.WithKeyFile(key))
	require.NoError(t, err)
	defer fresh.Close()
	got, err := fresh.Get(ctx, "server-counter")
	require.NoError(t, err)
	final, err := strconv.Atoi(got.AccessToken)
	require.NoError(t, err)
	t.Logf("provider: %d refreshes, %d invalid_grant, %d API calls, %d refused; processes: %d calls ok, %d failed; increments: %d acknowledged, %d unknown, %d found",
		st.Refreshes, st.InvalidGrants, st.APICalls, st.APIRefused, ok2, failed, incs, unknown, final)
	assert.Zero(t, st.InvalidGrants, "no refresh token used twice")
	assert.GreaterOrEqual(t, final, incs, "no acknowledged increment lost")
	assert.LessOrEqual(t, final, incs+unknown, "no increment applied that was reported refused")
	assert.Positive(t, ok2)
	sess, err := fresh.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, sess.Health.NeedsLogin.IsZero(), "the session is not marked dead")
}
