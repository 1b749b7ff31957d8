package sessionstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/memstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// A refresh token the provider refuses with invalid_grant, while it is the
// stored one: the session is stored marked, tokens kept, and the error
// wraps both ErrNeedsLogin and the provider's error. Every token source
// then answers ErrNeedsLogin without a request, until a new login is
// stored.
func TestDeadRefreshTokenMarksTheSession(t *testing.T) {
	ctx := context.Background()
	p := sessionstoretest.NewProvider(time.Hour)
	defer p.Close()
	s, stored := setup(t, p)
	p.SetEchoTokens(true)
	p.RevokeRefreshTokens()
	refresh := sessionstore.ConfigRefresher(p.Config())
	ts := sessionstore.TokenSource(ctx, s, "server", refresh)
	before := p.Stats().TokenRequests

	_, err := ts.Token()
	require.Error(t, err)
	assert.ErrorIs(t, err, sessionstore.ErrNeedsLogin)
	var re *oauth2.RetrieveError
	require.True(t, errors.As(err, &re), "errors.As finds the provider's error")
	assert.Equal(t, "invalid_grant", re.ErrorCode)
	assert.NotContains(t, err.Error(), stored.RefreshToken, "redacted as ever")
	assert.NotContains(t, re.ErrorDescription, stored.RefreshToken)
	assert.Equal(t, before+1, p.Stats().TokenRequests)

	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.False(t, got.Health.NeedsLogin.IsZero(), "marked")
	assert.WithinDuration(t, time.Now(), got.Health.NeedsLogin, time.Minute)
	assert.Equal(t, "invalid_grant", got.Health.Reason)
	assert.True(t, got.AccessToken == stored.AccessToken && got.RefreshToken == stored.RefreshToken, "the tokens are kept")

	// This source, and a new one (another process), answer at once.
	other := sessionstore.TokenSource(ctx, s, "server", refresh)
	for _, src := range []oauth2.TokenSource{ts, other, ts} {
		_, err := src.Token()
		assert.ErrorIs(t, err, sessionstore.ErrNeedsLogin)
		assert.Contains(t, err.Error(), "needs a new login")
		assert.False(t, errors.As(err, &re), "no provider error: no request")
	}
	assert.Equal(t, before+1, p.Stats().TokenRequests, "no further request")

	// A new login, stored with Set, clears the mark: both sources work
	// again, with no backoff left over.
	tok, err := p.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	require.NoError(t, s.Set(ctx, "server", sessionstore.FromToken(tok)))
	for _, src := range []oauth2.TokenSource{ts, other} {
		got, err := src.Token()
		require.NoError(t, err)
		assert.True(t, got.AccessToken == tok.AccessToken, "the new login's token")
	}
}

// Only invalid_grant marks: 5xx, invalid_client, a network error and a
// timeout are failed refreshes that back off as before and leave the
// session as it was.
func TestOnlyInvalidGrantMarks(t *testing.T) {
	ctx := context.Background()
	for name, inject := range map[string]func(p *sessionstoretest.Provider) sessionstore.Refresher{
		"503": func(p *sessionstoretest.Provider) sessionstore.Refresher {
			p.SetFailing(true)
			return sessionstore.ConfigRefresher(p.Config())
		},
		"500 server_error": func(p *sessionstoretest.Provider) sessionstore.Refresher {
			p.SetTokenError(http.StatusInternalServerError, "server_error")
			return sessionstore.ConfigRefresher(p.Config())
		},
		"invalid_client": func(p *sessionstoretest.Provider) sessionstore.Refresher {
			p.SetTokenError(http.StatusUnauthorized, "invalid_client")
			return sessionstore.ConfigRefresher(p.Config())
		},
		"network": func(p *sessionstoretest.Provider) sessionstore.Refresher {
			cfg := p.Config()
			p.Close() // nothing listens there any more
			return sessionstore.ConfigRefresher(cfg)
		},
		"timeout": func(p *sessionstoretest.Provider) sessionstore.Refresher {
			return func(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
				ctx, cancel := context.WithTimeout(ctx, time.Millisecond)
				defer cancel()
				<-ctx.Done()
				return nil, ctx.Err()
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := sessionstoretest.NewProvider(time.Hour)
			defer p.Close()
			s, stored := setup(t, p)
			var events []sessionstore.Event
			ts := sessionstore.TokenSource(ctx, s, "server", inject(p),
				sessionstore.WithEvents(func(e sessionstore.Event) { events = append(events, e) }))
			_, err := ts.Token()
			require.Error(t, err)
			assert.NotErrorIs(t, err, sessionstore.ErrNeedsLogin)
			_, again := ts.Token()
			assert.Equal(t, err, again, "backing off: the same error")
			got, gerr := s.Get(ctx, "server")
			require.NoError(t, gerr)
			assert.True(t, stored.Equal(got), "the session is left as it was, unmarked")
			require.Len(t, events, 1, "one request, one event")
			assert.Equal(t, sessionstore.EventRefreshFailed, events[0].Kind)
			assert.Equal(t, err, events[0].Err)
		})
	}
}

// A refresh stores when it happened; an invalid_grant keeps that time.
func TestLastRefresh(t *testing.T) {
	ctx := context.Background()
	p := sessionstoretest.NewProvider(time.Hour)
	defer p.Close()
	s, _ := setup(t, p)
	clock := &fakeClock{t: time.Now()}
	defer sessionstore.SetTimeNow(clock.now)()
	_, err := sessionstore.TokenSource(ctx, s, "server", sessionstore.ConfigRefresher(p.Config())).Token()
	require.NoError(t, err)
	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, got.Health.LastRefresh.Equal(clock.now()), "last refresh %v", got.Health.LastRefresh)
	assert.True(t, got.Health.NeedsLogin.IsZero())

	p.RevokeRefreshTokens()
	p.ExpireAll()
	clock.add(2 * time.Hour)
	_, err = sessionstore.TokenSource(ctx, s, "server", sessionstore.ConfigRefresher(p.Config())).Token()
	require.ErrorIs(t, err, sessionstore.ErrNeedsLogin)
	marked, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, marked.Health.NeedsLogin.Equal(clock.now()))
	assert.True(t, marked.Health.LastRefresh.Equal(got.Health.LastRefresh), "the last refresh is kept")
}

// An invalid_grant whose mark cannot be stored (the lock was lost: another
// host refreshed meanwhile) marks nothing: the other host's session is
// used.
func TestInvalidGrantAfterLostLockMarksNothing(t *testing.T) {
	ctx := context.Background()
	p := sessionstoretest.NewProvider(time.Hour)
	defer p.Close()
	s := lapsedStore{memstore.New()}
	tok, err := p.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	expired := sessionstore.FromToken(tok)
	expired.Expiry = time.Now().Add(-time.Minute)
	require.NoError(t, s.Set(ctx, "server", expired))
	refresh := func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		other, err := sessionstore.ConfigRefresher(p.Config())(ctx, cur)
		require.NoError(t, err)
		require.NoError(t, s.Set(ctx, "server", sessionstore.FromToken(other)))
		return sessionstore.ConfigRefresher(p.Config())(ctx, cur) // refused: invalid_grant
	}
	var kinds []sessionstore.EventKind
	_, err = sessionstore.TokenSource(ctx, s, "server", refresh,
		sessionstore.WithEvents(func(e sessionstore.Event) { kinds = append(kinds, e.Kind) })).Token()
	require.NoError(t, err)
	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, got.Health.NeedsLogin.IsZero(), "not marked")
	assert.Equal(t, []sessionstore.EventKind{sessionstore.EventRefreshFailed}, kinds, "the refused request is reported")
}

// Events: one per request this source makes, none for a token found
// refreshed by another source; fn runs outside every lock (it can use the
// source and the record), and the refreshed event carries the new expiry.
func TestEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := sessionstoretest.NewProvider(time.Hour)
	defer p.Close()
	s, _ := setup(t, p)
	refresh := sessionstore.ConfigRefresher(p.Config())
	var (
		mu     sync.Mutex
		events []sessionstore.Event
		ts     oauth2.TokenSource
	)
	ts = sessionstore.TokenSource(ctx, s, "server", refresh, sessionstore.WithEvents(func(e sessionstore.Event) {
		// Neither this source's lock nor the record's is held.
		_, err := ts.Token()
		assert.True(t, err == nil || errors.Is(err, sessionstore.ErrNeedsLogin), "%v", err)
		_, err = s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) { return cur, nil })
		assert.NoError(t, err)
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}))
	tok, err := ts.Token()
	require.NoError(t, err)
	_, err = ts.Token() // from memory: no event
	require.NoError(t, err)

	// Another source refreshes; this one finds its token: no event here.
	var others int
	p.ExpireAll()
	expire(t, s)
	other := sessionstore.TokenSource(ctx, s, "server", refresh, sessionstore.WithEvents(func(sessionstore.Event) { others++ }))
	_, err = other.Token()
	require.NoError(t, err)
	_, err = ts.Token()
	require.NoError(t, err)
	assert.Equal(t, 1, others)

	expire(t, s)
	p.RevokeRefreshTokens()
	_, err = ts.Token()
	require.ErrorIs(t, err, sessionstore.ErrNeedsLogin)
	_, err = ts.Token() // answered from the mark: no event
	require.ErrorIs(t, err, sessionstore.ErrNeedsLogin)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 2)
	assert.Equal(t, sessionstore.EventRefreshed, events[0].Kind)
	assert.Equal(t, "server", events[0].AuthType)
	assert.True(t, events[0].Expiry.Equal(tok.Expiry))
	assert.NoError(t, events[0].Err)
	assert.Equal(t, sessionstore.EventNeedsLogin, events[1].Kind)
	assert.ErrorIs(t, events[1].Err, sessionstore.ErrNeedsLogin)
	assert.Equal(t, "needs login", events[1].Kind.String())
	assert.Equal(t, 2, p.Stats().Refreshes, "this source's and the other's")
}

// expire stores the session with its token expired.
func expire(t *testing.T, s sessionstore.Store) {
	t.Helper()
	_, err := s.Update(context.Background(), "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		cur.Expiry = time.Now().Add(-time.Minute)
		return cur, nil
	})
	require.NoError(t, err)
}

// KeepAlive refreshes before each expiry and returns nil when ctx ends;
// on a dead refresh token it returns ErrNeedsLogin. Tokens live 2 s.
func TestKeepAlive(t *testing.T) {
	p := sessionstoretest.NewProvider(2 * time.Second)
	defer p.Close()
	s, _ := setup(t, p)
	refresh := sessionstore.ConfigRefresher(p.Config())
	var refreshed sync.WaitGroup
	refreshed.Add(3)
	var n int
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- sessionstore.KeepAlive(ctx, s, "server", refresh, sessionstore.WithEvents(func(e sessionstore.Event) {
			mu.Lock()
			defer mu.Unlock()
			if e.Kind == sessionstore.EventRefreshed {
				if n++; n <= 3 {
					refreshed.Done()
				}
			}
		}))
	}()
	waitOrFail(t, "3 refreshes", func() { refreshed.Wait() })
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "ctx ended")
	case <-time.After(20 * time.Second):
		t.Fatal("KeepAlive did not return after ctx ended")
	}
	st := p.Stats()
	assert.Equal(t, 0, st.InvalidGrants)
	assert.GreaterOrEqual(t, st.Refreshes, 3)

	// A dead refresh token: KeepAlive returns ErrNeedsLogin.
	p.RevokeRefreshTokens()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := sessionstore.KeepAlive(ctx, s, "server", refresh)
	assert.ErrorIs(t, err, sessionstore.ErrNeedsLogin)
	assert.NoError(t, ctx.Err(), "it returned before ctx ended")
}

// A missing session is waited for: KeepAlive keeps alive the session
// stored later.
func TestKeepAliveWaitsForASession(t *testing.T) {
	p := sessionstoretest.NewProvider(time.Hour)
	defer p.Close()
	s := memstore.New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	refreshed := make(chan struct{}, 1)
	go func() {
		done <- sessionstore.KeepAlive(ctx, s, "server", sessionstore.ConfigRefresher(p.Config()),
			sessionstore.WithEvents(func(e sessionstore.Event) {
				if e.Kind == sessionstore.EventRefreshed {
					select {
					case refreshed <- struct{}{}:
					default:
					}
				}
			}))
	}()
	time.Sleep(1500 * time.Millisecond) // KeepAlive has found nothing, twice
	select {
	case err := <-done:
		t.Fatalf("KeepAlive returned on a missing session: %v", err)
	default:
	}
	tok, err := p.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	a := sessionstore.FromToken(tok)
	a.Expiry = time.Now().Add(-time.Minute)
	require.NoError(t, s.Set(ctx, "server", a))
	select {
	case <-refreshed:
	case <-time.After(20 * time.Second):
		t.Fatal("the session stored later was not refreshed")
	}
	cancel()
	assert.NoError(t, <-done)

	err = sessionstore.KeepAlive(context.Background(), s, "", sessionstore.ConfigRefresher(p.Config()))
	assert.ErrorIs(t, err, sessionstore.ErrInvalidAuthType)
	assert.Error(t, sessionstore.KeepAlive(context.Background(), s, "server", nil), "no Refresher")
}

func waitOrFail(t *testing.T, what string, f func()) {
	t.Helper()
	ch := make(chan struct{})
	go func() { f(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Health holds no secret: the redacted forms show it.
func TestAuthObjectShowsHealth(t *testing.T) {
	a := sampleAuth()
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	a.Health = sessionstore.Health{NeedsLogin: at, Reason: "invalid_grant", LastRefresh: at.Add(-time.Hour)}
	assert.Contains(t, fmt.Sprint(a), "Health:{NeedsLogin:2026-11-27T08:00:00Z Reason:invalid_grant LastRefresh:2026-11-27T07:00:00Z}")
	assert.NotContains(t, fmt.Sprint(sampleAuth()), "Health", "a zero health is not shown")
	data, err := json.Marshal(a)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"health":{"needs_login":"2026-11-27T08:00:00Z","reason":"invalid_grant","last_refresh":"2026-11-27T07:00:00Z"}`)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("session", "auth", a)
	assert.Contains(t, logged.String(), "auth.health.needs_login=2026-11-27T08:00:00.000Z auth.health.reason=invalid_grant")
	for _, out := range []string{fmt.Sprint(a), string(data), logged.String()} {
		assert.NotContains(t, out, "SECRET")
	}

	b := a.Clone()
	assert.True(t, a.Equal(b))
	for name, change := range map[string]func(*sessionstore.Health){
		"needs login":  func(h *sessionstore.Health) { h.NeedsLogin = time.Time{} },
		"reason":       func(h *sessionstore.Health) { h.Reason = "" },
		"last refresh": func(h *sessionstore.Health) { h.LastRefresh = h.LastRefresh.Add(time.Nanosecond) },
	} {
		c := a.Clone()
		change(&c.Health)
		assert.False(t, a.Equal(c), name)
	}
}
