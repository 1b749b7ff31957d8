package etcdstore_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// Hosts (processes with etcd clients of their own) incrementing one
// counter together lose no update.
func TestHostsNoLostUpdates(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	const procs, each = 4, 25
	var kids []*child
	for range procs {
		k := startChild(t, ctx, childSpec{role: "increment", endpoints: []string{e.endpoint}, prefix: e.prefix, key: e.key, name: "counter", n: each})
		k.expect(t, "ready")
		kids = append(kids, k)
	}
	for _, k := range kids {
		require.NoError(t, k.stdin.Close())
	}
	for _, k := range kids {
		k.expect(t, "done")
		require.NoError(t, k.cmd.Wait())
	}
	got, err := e.open(t).Get(ctx, "counter")
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(procs*each), got.AccessToken, "%d hosts x %d increments: none lost", procs, each)
}

// Eight hosts find the shared token expired at once: the provider, which
// rotates refresh tokens, sees exactly one refresh and no invalid_grant,
// and every host uses the one new token.
func TestHostsRefreshStormRefreshesOnce(t *testing.T) {
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

	const hosts = 8
	var kids []*child
	for range hosts {
		k := startChild(t, ctx, childSpec{role: "token", endpoints: []string{e.endpoint}, prefix: e.prefix, key: e.key, name: "server", url: srv.URL})
		k.expect(t, "ready")
		kids = append(kids, k)
	}
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
	assert.Equal(t, 1, st.Refreshes, "exactly one refresh for %d hosts", hosts)
	assert.Zero(t, st.InvalidGrants, "no invalid_grant")
	assert.Len(t, tokens, 1, "all hosts use the same new access token: %v", tokens)
	assert.Equal(t, hosts, st.APICalls)
}

// A host killed (SIGKILL) while it holds a record's lock inside Update
// blocks that record only until its lease expires: another host then
// proceeds, and the record holds the value from before the dead host's
// Update.
func TestHostKilledHoldingLock(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	s := e.open(t)
	require.NoError(t, s.Set(ctx, "counter", sessionstore.AuthObject{AccessToken: "41"}))
	k := startChild(t, ctx, childSpec{role: "hold", endpoints: []string{e.endpoint}, prefix: e.prefix, key: e.key, name: "counter", ttl: time.Second})
	f := k.expect(t, "holding")
	require.Equal(t, []string{"holding", "41"}, f)
	require.NoError(t, k.cmd.Process.Kill())
	k.cmd.Wait()

	var saw string
	got, err := s.Update(ctx, "counter", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		saw = cur.AccessToken
		return increment(cur, true)
	})
	require.NoError(t, err, "another host proceeds once the dead host's lease expires")
	assert.Equal(t, "41", saw, "the dead host wrote nothing")
	assert.Equal(t, "42", got.AccessToken)
	again, err := e.open(t).Get(ctx, "counter")
	require.NoError(t, err)
	assert.Equal(t, "42", again.AccessToken, "data intact")
}
