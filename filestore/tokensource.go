package filestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// TokenSource returns an oauth2.TokenSource for the session stored under
// authType, shared by every process that uses the store:
//
//   - a valid token from the cache is returned at once, without I/O;
//   - otherwise it takes the record's lock and reads the record again: if
//     another process refreshed meanwhile, that token is used;
//   - else refresh is called and the new token stored before the lock is
//     released, so a rotating refresh token is used exactly once.
//
// A failed refresh leaves the stored session untouched and returns the
// refresher's error (an *oauth2.RetrieveError for ConfigRefresher). A
// response without a refresh token keeps the old one. A token counts as
// expired WithExpirySkew (default 10 s) before its expiry, or half its
// lifetime before, if that is shorter. With no stored session, Token
// returns an error wrapping ErrNotFound.
//
// ctx bounds every lock wait and refresh of the returned source. It is
// safe for concurrent use; there is no need to wrap it in
// oauth2.ReuseTokenSource.
func (s *Store) TokenSource(ctx context.Context, authType string, refresh Refresher) oauth2.TokenSource {
	return &tokenSource{s: s, ctx: ctx, name: authType, refresh: refresh}
}

type tokenSource struct {
	s       *Store
	ctx     context.Context
	name    string
	refresh Refresher

	mu sync.Mutex // serialises this source's refreshes
}

func (ts *tokenSource) Token() (*oauth2.Token, error) {
	a, written, err := ts.s.lookup(ts.ctx, ts.name)
	if err != nil {
		return nil, err
	}
	if ts.s.valid(a, written) {
		return a.Token(), nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	a, err = ts.s.write(ts.ctx, "refresh", ts.name, func(c *current) (AuthObject, action, error) {
		if c.err != nil {
			return AuthObject{}, 0, c.err
		}
		if !c.exists {
			return AuthObject{}, 0, fmt.Errorf("filestore: token for %q: %s: %w", ts.name, c.path, ErrNotFound)
		}
		if ts.s.valid(c.auth, c.written) {
			return c.auth, keep, nil // another process refreshed meanwhile
		}
		tok, err := ts.refresh(ts.ctx, c.auth.Token())
		if err != nil {
			return AuthObject{}, 0, fmt.Errorf("filestore: refreshing %q: %w", ts.name, err)
		}
		if tok == nil || tok.AccessToken == "" {
			return AuthObject{}, 0, fmt.Errorf("filestore: refreshing %q: the refresher returned no access token", ts.name)
		}
		next := merge(c.auth, FromToken(tok))
		if sameToken(next, c.auth) {
			return c.auth, keep, nil // unchanged: not rewritten
		}
		return next, store, nil
	})
	if err != nil {
		return nil, err
	}
	return a.Token(), nil
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
		fresh.Extra = old.clone().Extra
	}
	return fresh
}

func sameToken(a, b AuthObject) bool {
	return a.AccessToken == b.AccessToken && a.RefreshToken == b.RefreshToken && a.Expiry.Equal(b.Expiry)
}

// valid reports whether a's access token can be used now: it expires
// later than the skew from now, the skew being at most half the token's
// lifetime (from written), so that a short-lived token is not refreshed on
// every call.
func (s *Store) valid(a AuthObject, written time.Time) bool {
	if a.AccessToken == "" {
		return false
	}
	if a.Expiry.IsZero() {
		return true
	}
	skew := s.skew
	if !written.IsZero() {
		if life := a.Expiry.Sub(written); life > 0 && life/2 < skew {
			skew = life / 2
		}
	}
	return s.now().Add(skew).Before(a.Expiry)
}
