package sessionstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// A Refresher gets a new token for the current one, typically from the
// provider's token endpoint with current.RefreshToken.
type Refresher func(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error)

// ConfigRefresher refreshes through cfg's token endpoint with the
// refresh_token grant. The provider's errors come back as
// *oauth2.RetrieveError.
func ConfigRefresher(cfg *oauth2.Config) Refresher {
	return func(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
		if current == nil || current.RefreshToken == "" {
			return nil, errors.New("no refresh token")
		}
		// A token with only a refresh token is invalid, so cfg's token
		// source goes straight to the endpoint.
		return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: current.RefreshToken}).Token()
	}
}

// A TokenSourceOption configures TokenSource.
type TokenSourceOption func(*tokenSource)

// WithExpirySkew makes TokenSource refresh a token this long before it
// expires. The default is 10 seconds, as in golang.org/x/oauth2.
func WithExpirySkew(d time.Duration) TokenSourceOption {
	return func(ts *tokenSource) { ts.skew = d }
}

// timeNow is the clock of every token source (a seam for tests).
var timeNow = time.Now

// TokenSource returns an oauth2.TokenSource for the session stored in s
// under authType, shared by every process (and, with etcdstore, every
// host) that uses the same store:
//
//   - a valid token is returned from memory, without I/O or allocation
//     once the backend caches the record;
//   - otherwise it runs s.Update: under the record's lock it reads the
//     record again, and if another process refreshed meanwhile, that token
//     is used and nothing is written;
//   - else refresh is called and the new token stored before the lock is
//     released, so a rotating refresh token is used exactly once.
//
// A refresh refused with invalid_grant (its refresh token already used)
// reads the session again first: if another process or host stored a new
// one meanwhile, that one is used. Otherwise a failed refresh leaves the
// stored session untouched and returns the refresher's error (an
// *oauth2.RetrieveError for ConfigRefresher), with the session's tokens
// redacted from its message and from the provider's
// description, even where the provider echoed them. The source then backs
// off: for 1 s, doubling after each further failure up to 1 min, calls
// that need a refresh get the same error without a request to the
// provider (a token another process stored meanwhile is still used). A
// response without a refresh token keeps the old one. A token counts as
// expired WithExpirySkew (default 10 s) before its expiry, or half its
// lifetime before, if that is shorter; its lifetime counts from when this
// source first saw it. With no stored session, Token returns an error
// wrapping ErrNotFound.
//
// ctx bounds every lock wait and refresh of the returned source. It is
// safe for concurrent use; there is no need to wrap it in
// oauth2.ReuseTokenSource.
func TokenSource(ctx context.Context, s Store, authType string, refresh Refresher,
	opts ...TokenSourceOption) oauth2.TokenSource {
	ts := &tokenSource{s: s, ctx: ctx, name: authType, refresh: refresh, skew: 10 * time.Second}
	for _, opt := range opts {
		opt(ts)
	}
	return ts
}

type tokenSource struct {
	s       Store
	ctx     context.Context
	name    string
	refresh Refresher
	skew    time.Duration

	last atomic.Pointer[seen] // the session this source last handed out

	mu       sync.Mutex // serialises this source's refreshes; guards the fields below
	failErr  error      // the last refresh's error, returned until retryAt
	retryAt  time.Time  // no request to the provider before this
	failures int        // refreshes failed in a row
}

// Backoff after a failed refresh: 1 s, doubling up to a minute.
const (
	minBackoff = time.Second
	maxBackoff = time.Minute
)

// seen is a session a token source handed out, with its token built once.
// It is immutable once published.
type seen struct {
	auth  AuthObject
	tok   *oauth2.Token
	since time.Time // when this source first saw it
}

func (ts *tokenSource) Token() (*oauth2.Token, error) {
	a, err := ts.s.Get(ts.ctx, ts.name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	// The hot path takes no lock and allocates nothing: the stored session
	// is the one this source last handed out, and still valid.
	if l := ts.last.Load(); err == nil && l != nil && l.auth.Equal(a) && ts.valid(l) {
		return l.tok, nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err == nil {
		l := ts.last.Load()
		if l == nil || !l.auth.Equal(a) {
			l = &seen{auth: a, tok: a.Token(), since: timeNow()}
			ts.last.Store(l)
		}
		if ts.valid(l) {
			return l.tok, nil
		}
	}
	if ts.failErr != nil && timeNow().Before(ts.retryAt) {
		return nil, ts.failErr // backing off: no request to the provider
	}
	stale, getErr := a, err // what this source found unusable
	var found *seen
	var refreshErr error
	var usedRT string // the refresh token the failed refresh sent
	_, err = ts.s.Update(ts.ctx, ts.name, func(cur AuthObject, exists bool) (AuthObject, error) {
		if !exists {
			if getErr != nil { // it names the file or key
				return AuthObject{}, fmt.Errorf("sessionstore: token for %q: %w", ts.name, getErr)
			}
			return AuthObject{}, fmt.Errorf("sessionstore: token for %q: %w", ts.name, ErrNotFound)
		}
		if l := ts.last.Load(); l != nil && l.auth.Equal(cur) {
			if ts.valid(l) {
				found = l
				return cur, nil
			}
		} else if cur.AccessToken != stale.AccessToken || !cur.Expiry.Equal(stale.Expiry) {
			// Another process refreshed meanwhile: use its token while
			// it has not expired, whatever the skew.
			now := timeNow()
			if cur.AccessToken != "" && (cur.Expiry.IsZero() || now.Before(cur.Expiry)) {
				found = &seen{auth: cur, tok: cur.Token(), since: now}
				return cur, nil // Equal to cur: nothing is written
			}
		}
		if ts.refresh == nil {
			return AuthObject{}, fmt.Errorf("sessionstore: token for %q has expired and the token source has no Refresher", ts.name)
		}
		tok, err := ts.refresh(ts.ctx, cur.Token())
		if err != nil {
			refreshErr = redactErr(fmt.Errorf("sessionstore: refreshing %q: %w", ts.name, err),
				cur.AccessToken, cur.RefreshToken, cur.TransferToken)
			usedRT = cur.RefreshToken
			return AuthObject{}, refreshErr
		}
		if tok == nil || tok.AccessToken == "" {
			return AuthObject{}, fmt.Errorf("sessionstore: refreshing %q: the refresher returned no access token", ts.name)
		}
		next := merge(cur, FromToken(tok))
		found = &seen{auth: next.Clone(), tok: next.Token(), since: timeNow()}
		return next, nil
	})
	if err != nil {
		if refreshErr != nil && errors.Is(err, refreshErr) {
			if l := ts.afterInvalidGrant(err, usedRT); l != nil {
				ts.last.Store(l)
				ts.failErr, ts.failures = nil, 0
				return l.tok, nil
			}
			ts.failures++
			ts.failErr = err
			ts.retryAt = timeNow().Add(min(minBackoff<<min(ts.failures-1, 6), maxBackoff))
		}
		return nil, err
	}
	ts.last.Store(found)
	ts.failErr, ts.failures = nil, 0
	return found.tok, nil
}

// afterInvalidGrant handles a refresh refused with invalid_grant: the
// refresh token was already used. If another process or host stored a new
// session meanwhile (a lock whose lease lapsed while this one refreshed),
// it re-reads and returns that session; otherwise nil.
func (ts *tokenSource) afterInvalidGrant(err error, usedRT string) *seen {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		return nil
	}
	a, gerr := ts.s.Get(ts.ctx, ts.name)
	if gerr != nil || a.AccessToken == "" || a.RefreshToken == usedRT {
		return nil
	}
	now := timeNow()
	if !a.Expiry.IsZero() && !now.Before(a.Expiry) {
		return nil
	}
	return &seen{auth: a, tok: a.Token(), since: now}
}

// valid reports whether l's access token can be used now: it expires
// later than the skew from now, the skew being at most half the token's
// lifetime (from when it was first seen), so that a short-lived token is
// not refreshed on every call.
func (ts *tokenSource) valid(l *seen) bool {
	a := l.auth
	if a.AccessToken == "" {
		return false
	}
	if a.Expiry.IsZero() {
		return true
	}
	skew := ts.skew
	if life := a.Expiry.Sub(l.since); life > 0 && life/2 < skew {
		skew = life / 2
	}
	return timeNow().Add(skew).Before(a.Expiry)
}

// merge returns the refreshed session: fresh's fields, with what the
// token response did not repeat (the refresh token above all) kept from
// old.
func merge(old, fresh AuthObject) AuthObject {
	if fresh.RefreshToken == "" {
		fresh.RefreshToken = old.RefreshToken
	}
	if fresh.TokenType == "" {
		fresh.TokenType = old.TokenType
	}
	if fresh.Scope == "" {
		fresh.Scope = old.Scope
	}
	if fresh.Ref == (Ref{}) {
		fresh.Ref = old.Ref
	}
	if fresh.TransferToken == "" {
		fresh.TransferToken = old.TransferToken
	}
	if fresh.Extra == nil && old.Extra != nil {
		fresh.Extra = old.Clone().Extra
	}
	return fresh
}
