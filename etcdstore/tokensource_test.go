package etcdstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/etcdstore"
)

// A refresh that outlives its lock (the lease ended while the provider
// answered) is not stored: Token returns an error wrapping
// sessionstore.ErrLockLost, the other host's session stands, and the next
// call re-reads and uses it without refreshing.
func TestTokenSourceLockLostRefreshIsNotStored(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	mine := openOn(t, e.client(t), e.prefix, etcdstore.WithKeyFile(e.key))
	other := e.open(t)
	expired := sessionstore.AuthObject{AccessToken: "old", RefreshToken: "r1", Expiry: time.Now().Add(-time.Minute)}
	require.NoError(t, other.Set(ctx, "server", expired))

	refreshes := 0
	refresh := func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		refreshes++
		// Meanwhile this host's lease ends (as if it stalled past the TTL)
		// and another host refreshes and stores its token.
		_, err := c.Revoke(ctx, clientv3.LeaseID(mine.LeaseID()))
		require.NoError(t, err)
		require.NoError(t, other.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "other-host", RefreshToken: "r2", Expiry: time.Now().Add(time.Hour)}))
		return &oauth2.Token{AccessToken: "mine", RefreshToken: "r-mine", Expiry: time.Now().Add(time.Hour)}, nil
	}
	ts := sessionstore.TokenSource(ctx, mine, "server", refresh)
	_, err := ts.Token()
	require.ErrorIs(t, err, sessionstore.ErrLockLost)
	assert.Equal(t, 1, refreshes)

	got, err := other.Get(ctx, "server")
	require.NoError(t, err)
	assert.Equal(t, "other-host", got.AccessToken, "the refresh whose lock was lost was not stored")

	tok, err := ts.Token()
	require.NoError(t, err, "the next call re-reads")
	assert.Equal(t, "other-host", tok.AccessToken)
	assert.Equal(t, 1, refreshes, "and does not refresh again")
}
