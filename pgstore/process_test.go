package pgstore_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// Processes (each with a pool of its own) incrementing one counter
// together lose no update.
func TestProcessesNoLostUpdates(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	const procs, each = 4, 25
	kids := startChildren(t, ctx, procs, childSpec{role: "increment", url: e.url, ns: e.ns, key: e.key, name: "counter", n: each})
	for _, k := range kids {
		require.NoError(t, k.stdin.Close())
	}
	for _, k := range kids {
		k.expect(t, "done")
		require.NoError(t, k.cmd.Wait())
	}
	got, err := e.open(t).Get(ctx, "counter")
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(procs*each), got.AccessToken, "%d processes x %d increments: none lost", procs, each)
}

// Eight processes find the shared token expired at once: the provider,
// which rotates refresh tokens, sees exactly one refresh and no
// invalid_grant, and every process uses the one new token.
func TestProcessesRefreshStormRefreshesOnce(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	srv := sessionstoretest.NewProvider(time.Hour)
	defer srv.Close()
	srv.SetRefreshDelay(50 * time.Millisecond) // a wide window for a race
	tok, err := srv.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	a := sessionstore.FromToken(tok)
	srv.ExpireAll()
	a.Expiry = time.Now().Add(-time.Minute)
	require.NoError(t, e.open(t).Set(ctx, "server", a))

	const procs = 8
	kids := startChildren(t, ctx, procs, childSpec{role: "token", url: e.url, ns: e.ns, key: e.key, name: "server", oauth: srv.URL})
	for _, k := range kids {
		require.NoError(t, k.stdin.Close())
	}
	tokens := map[string]int{}
	for _, k := range kids {
		f := k.expect(t, "token")
		tokens[f[1]]++
		require.NoError(t, k.cmd.Wait())
	}
	st := srv.Stats()
	t.Logf("provider: %d refreshes, %d invalid_grant, %d API calls", st.Refreshes, st.InvalidGrants, st.APICalls)
	assert.Equal(t, 1, st.Refreshes, "exactly one refresh for %d processes", procs)
	assert.Zero(t, st.InvalidGrants, "no invalid_grant")
	assert.Len(t, tokens, 1, "all processes use the same new access token: %v", tokens)
	assert.NotContains(t, tokens, tok.AccessToken, "the new token, not the expired one")
	assert.Equal(t, procs, st.APICalls)
}

// A process killed (SIGKILL) while it holds a record's lock inside Update
// blocks that record only until its lease expires: another process then
// proceeds, and the record holds the value from before the dead process's
// Update.
func TestProcessKilledHoldingLock(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	s := e.open(t)
	require.NoError(t, s.Set(ctx, "counter", sessionstore.AuthObject{AccessToken: "41"}))
	const ttl = time.Second
	k := startChild(t, ctx, childSpec{role: "hold", url: e.url, ns: e.ns, key: e.key, name: "counter", ttl: ttl})
	require.Equal(t, []string{"holding", "41"}, k.expect(t, "holding"))
	require.NoError(t, k.cmd.Process.Kill())
	k.cmd.Wait()

	var saw string
	start := time.Now()
	got, err := s.Update(ctx, "counter", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		saw = cur.AccessToken
		return increment(cur, true)
	})
	waited := time.Since(start)
	require.NoError(t, err, "another process proceeds once the dead one's lease expires")
	t.Logf("waited %v for a lease of %v", waited, ttl)
	assert.Less(t, waited, ttl+10*time.Second, "the dead holder blocks for about its lease, not the default 15 s")
	assert.Equal(t, "41", saw, "the dead process wrote nothing")
	assert.Equal(t, "42", got.AccessToken)
	again, err := e.open(t).Get(ctx, "counter")
	require.NoError(t, err)
	assert.Equal(t, "42", again.AccessToken, "data intact")
}
