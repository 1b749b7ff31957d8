package sessionstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/memstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// fakeClock is a settable clock for the token sources.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// setup opens a file store holding an expired session obtained from p.
func setup(t *testing.T, p *sessionstoretest.Provider) (*filestore.Store, sessionstore.AuthObject) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	key := filepath.Join(t.TempDir(), "k.key")
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	require.NoError(t, crypto.CreateKeyFile(key, k))
	s, err := filestore.Open(dir, filestore.WithKeyFile(key))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	tok, err := p.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	a := sessionstore.FromToken(tok)
	a.Expiry = time.Now().Add(-time.Minute)
	require.NoError(t, s.Set(ctx, "server", a))
	return s, a
}

// A failing token endpoint is not hammered: after a failed refresh the
// source backs off (1 s, doubling up to 1 min), returning the same error
// without a request; a success resets it.
func TestTokenSourceBacksOffAfterAFailedRefresh(t *testing.T) {
	p := sessionstoretest.NewProvider(time.Hour)
	defer p.Close()
	s, stored := setup(t, p)
	clock := &fakeClock{t: time.Now()}
	defer sessionstore.SetTimeNow(clock.now)()
	p.SetFailing(true)
	ts := sessionstore.TokenSource(context.Background(), s, "server", sessionstore.ConfigRefresher(p.Config()))

	_, first := ts.Token()
	require.Error(t, first)
	for range 50 {
		_, err := ts.Token()
		assert.Equal(t, first, err, "the same error while backing off")
	}
	assert.Equal(t, 1, p.Stats().Failures, "50 calls within the backoff made no request")

	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		clock.add(wait - 100*time.Millisecond)
		_, err := ts.Token()
		require.Error(t, err)
		assert.Equal(t, i+1, p.Stats().Failures, "no request before %v", wait)
		clock.add(200 * time.Millisecond)
		_, err = ts.Token()
		require.Error(t, err)
		assert.Equal(t, i+2, p.Stats().Failures, "a request once %v has passed", wait)
	}
	clock.add(10 * time.Minute)
	for range 10 { // the backoff never exceeds a minute
		_, _ = ts.Token()
		clock.add(61 * time.Second)
	}
	assert.Equal(t, 14, p.Stats().Failures)

	got, err := s.Get(context.Background(), "server")
	require.NoError(t, err)
	assert.True(t, stored.Equal(got), "failed refreshes leave the stored session untouched")

	p.SetFailing(false)
	clock.add(time.Minute)
	tok, err := ts.Token()
	require.NoError(t, err, "the provider is back")
	assert.NotEqual(t, stored.AccessToken, tok.AccessToken)
	assert.Equal(t, 1, p.Stats().Refreshes)
}

// A provider that echoes the refresh token in its error description must
// not put it in our error, nor in a log of it; errors.As still finds the
// *oauth2.RetrieveError.
func TestTokenSourceRefreshErrorsNeverCarryTokens(t *testing.T) {
	p := sessionstoretest.NewProvider(time.Hour)
	defer p.Close()
	s, stored := setup(t, p)
	p.SetEchoTokens(true)
	// Burn the stored refresh token, so that the provider answers
	// invalid_grant and echoes it.
	_, err := sessionstore.ConfigRefresher(p.Config())(context.Background(), stored.Token())
	require.NoError(t, err)

	_, err = sessionstore.TokenSource(context.Background(), s, "server", sessionstore.ConfigRefresher(p.Config())).Token()
	require.Error(t, err)
	var re *oauth2.RetrieveError
	require.True(t, errors.As(err, &re), "errors.As finds the provider's error")
	assert.Equal(t, "invalid_grant", re.ErrorCode)
	assert.Contains(t, re.ErrorDescription, "[redacted]", "the provider's description is kept, redacted")

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Error("refresh failed", "err", err, "re", re)
	for _, out := range []string{err.Error(), fmt.Sprintf("%+v", err), re.Error(), string(re.Body), logged.String()} {
		assert.NotContains(t, out, stored.RefreshToken, out)
		assert.NotContains(t, out, stored.AccessToken, out)
	}
	assert.Equal(t, 1, p.Stats().InvalidGrants)
}

// lapsedStore is a Store whose Update holds no lock, as when a lock's
// lease lapsed while its holder was paused: another host may refresh in
// between. Its write is fenced as etcdstore's: refused (ErrLockLost) if
// the record changed since fn read it. It stands for that case in
// TestTokenSourceInvalidGrantRereads.
type lapsedStore struct{ *memstore.Store }

func (s lapsedStore) Update(ctx context.Context, name string,
	fn func(sessionstore.AuthObject, bool) (sessionstore.AuthObject, error)) (sessionstore.AuthObject, error) {
	cur, err := s.Get(ctx, name)
	next, err := fn(cur, err == nil)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	if now, err := s.Get(ctx, name); err == nil && !now.Equal(cur) {
		return sessionstore.AuthObject{}, fmt.Errorf("lapsed: %w", sessionstore.ErrLockLost)
	}
	return next, s.Set(ctx, name, next)
}

// On invalid_grant the source re-reads first: if another host stored a
// new session with the refresh token this one was refused, that session
// is used, and no backoff starts.
func TestTokenSourceInvalidGrantRereads(t *testing.T) {
	ctx := context.Background()
	p := sessionstoretest.NewProvider(time.Hour)
	defer p.Close()
	s := lapsedStore{memstore.New()}
	tok, err := p.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	expired := sessionstore.FromToken(tok)
	expired.Expiry = time.Now().Add(-time.Minute)
	require.NoError(t, s.Set(ctx, "server", expired))

	var other *oauth2.Token
	refresh := func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		// Another host refreshes first, with the same refresh token, and
		// stores its result.
		var err error
		other, err = sessionstore.ConfigRefresher(p.Config())(ctx, cur)
		require.NoError(t, err)
		require.NoError(t, s.Set(ctx, "server", sessionstore.FromToken(other)))
		return sessionstore.ConfigRefresher(p.Config())(ctx, cur) // refused: invalid_grant
	}
	ts := sessionstore.TokenSource(ctx, s, "server", refresh)
	got, err := ts.Token()
	require.NoError(t, err, "the other host's session is used")
	assert.Equal(t, other.AccessToken, got.AccessToken)
	assert.Equal(t, 1, p.Stats().InvalidGrants)
	again, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, other.AccessToken, again.AccessToken, "no backoff, no further refresh")
	assert.Equal(t, 2, p.Stats().Refreshes+p.Stats().InvalidGrants)
}
