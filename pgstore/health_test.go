package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// rawRecord reads a record's row as it is stored: the sealed bytes and the
// version.
func rawRecord(t *testing.T, pool *pgxpool.Pool, ns, name string) ([]byte, int64) {
	t.Helper()
	var data []byte
	var ver int64
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT record, version FROM sessionstore.records WHERE namespace = $1 AND name = $2`, ns, name).Scan(&data, &ver))
	return data, ver
}

// Six processes on a dead refresh token: one request to the provider, one
// process marks the session, every one of them gets ErrNeedsLogin; the
// record is marked (format version 3), its tokens kept, and a new login
// clears it.
func TestProcessesDeadRefreshTokenKnownOnce(t *testing.T) {
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

	const procs = 6
	kids := startChildren(t, ctx, procs, childSpec{role: "health", url: e.url, ns: e.ns, key: e.key, name: "server", oauth: srv.URL})
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
	assert.Equal(t, 1, st.TokenRequests-before.TokenRequests, "exactly one request to the provider for %d processes", procs)
	assert.Equal(t, map[string]int{"provider": 1, "needs-login": procs - 1}, first, "one process marked it, the others found the mark")

	got, err := e.open(t).Get(ctx, "server")
	require.NoError(t, err)
	assert.False(t, got.Health.NeedsLogin.IsZero(), "the record is marked")
	assert.Equal(t, "invalid_grant", got.Health.Reason)
	assert.True(t, got.AccessToken == stored.AccessToken && got.RefreshToken == stored.RefreshToken, "its tokens are kept")
	ring, err := crypto.LoadKeyring(e.key)
	require.NoError(t, err)
	pool := e.pool(t)
	data, _ := rawRecord(t, pool, e.ns, "server")
	opened, _, err := envelope.Open(ring, data, e.ns, "server")
	require.NoError(t, err)
	assert.Equal(t, 3, opened.Version, "a marked session is sealed as version 3, which older readers refuse")

	// A new login clears it.
	tok, err = srv.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	require.NoError(t, s.Set(ctx, "server", sessionstore.FromToken(tok)))
	got2, err := sessionstore.TokenSource(ctx, e.open(t), "server", sessionstore.ConfigRefresher(srv.Config())).Token()
	require.NoError(t, err)
	assert.True(t, got2.AccessToken == tok.AccessToken, "the new login's token")
	data, _ = rawRecord(t, pool, e.ns, "server")
	opened, _, err = envelope.Open(ring, data, e.ns, "server")
	require.NoError(t, err)
	assert.Equal(t, 2, opened.Version, "an unmarked session is version 2 again")
	a, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, a.Health.NeedsLogin.IsZero(), "the mark is gone")
}
