package sessionstore

import (
	"cmp"
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

// WithEvents calls fn after each refresh request the token source makes
// (not for tokens others refreshed, nor for answers from a backoff or a
// mark), in the calling goroutine after every lock is released: a slow fn
// delays that caller alone.
func WithEvents(fn func(Event)) TokenSourceOption {
	return func(ts *tokenSource) { ts.events = fn }
}

// An Event is a refresh request a token source made (see WithEvents).
type Event struct {
	Kind     EventKind // EventRefreshed, EventRefreshFailed, EventNeedsLogin
	AuthType string
	Expiry   time.Time // the new token's, for EventRefreshed
	Err      error     // redacted, for the failures
}

// An EventKind says how a refresh request ended.
type EventKind int

const (
	EventRefreshed     EventKind = iota + 1 // a new token, stored
	EventRefreshFailed                      // no new token stored; Err says why
	EventNeedsLogin                         // invalid_grant: the session is now marked as needing a new login
)

func (k EventKind) String() string {
	switch k {
	case EventRefreshed:
		return "refreshed"
	case EventRefreshFailed:
		return "refresh failed"
	case EventNeedsLogin:
		return "needs login"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// timeNow is the clock of every token source (a seam for tests).
var timeNow = time.Now

// TokenSource returns an oauth2.TokenSource for the session stored in s
// under authType, safe for concurrent use (no oauth2.ReuseTokenSource
// needed); ctx bounds its lock waits and refreshes. A valid token comes
// from memory. Otherwise, under the record's lock (s.Update), a token
// another process or host stored meanwhile is used, or refresh is called
// and its token stored, with Health.LastRefresh, before the lock is
// released: a rotating refresh token is used once. A response without a
// refresh token keeps the old one.
//
// A token counts as expired WithExpirySkew (default 10 s) before its
// expiry, or half its lifetime before if that is shorter; its lifetime
// counts from Health.LastRefresh, else from when this source first saw it.
//
// A failed refresh leaves the stored session untouched and returns the
// refresher's error (an *oauth2.RetrieveError for ConfigRefresher) with
// the session's tokens redacted; until a backoff ends (1 s, doubling up to
// 1 min), calls that need a refresh get that error without a request. An
// invalid_grant for the refresh token still stored marks the session
// (Health.NeedsLogin, tokens kept) and returns an error wrapping
// ErrNeedsLogin and the provider's error; every TokenSource then returns
// ErrNeedsLogin without a request until a session without the mark is
// stored. With no stored session, Token returns an error wrapping
// ErrNotFound.
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
	events  func(Event)

	last atomic.Pointer[seen] // the session this source last handed out

	mu       sync.Mutex // serialises this source's refreshes; guards the fields below
	failErr  error      // the last refresh's error, returned until retryAt
	retryAt  time.Time  // no request to the provider before this
	failures int        // refreshes failed in a row
}

func backoff(n int) time.Duration { return min(time.Second<<min(n-1, 6), time.Minute) }

// seen is a session a token source handed out, with its token built once;
// immutable once published.
type seen struct {
	auth  AuthObject
	tok   *oauth2.Token
	since time.Time // when its lifetime started, for this source
}

// newSeen returns a as seen at now: its lifetime starts at its last
// refresh by a TokenSource (every process then agrees on when it is due),
// else now.
func newSeen(a AuthObject, now time.Time) *seen {
	since := now
	if r := a.Health.LastRefresh; !r.IsZero() && r.Before(now) && r.Before(a.Expiry) {
		since = r
	}
	return &seen{auth: a, tok: a.Token(), since: since}
}

func (ts *tokenSource) Token() (*oauth2.Token, error) {
	tok, ev, err := ts.token()
	if ev.Kind != 0 && ts.events != nil {
		ts.events(ev) // outside every lock
	}
	return tok, err
}

// token is Token, and the event it reports, if any.
func (ts *tokenSource) token() (*oauth2.Token, Event, error) {
	a, err := ts.s.Get(ts.ctx, ts.name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, Event{}, err
	}
	if err == nil && !a.Health.NeedsLogin.IsZero() {
		return nil, Event{}, needsLogin(ts.name, a.Health)
	}
	// The hot path takes no lock and allocates nothing: the stored session
	// is the one this source last handed out, and still valid.
	if l := ts.last.Load(); err == nil && l != nil && l.auth.Equal(a) && ts.valid(l) {
		return l.tok, Event{}, nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err == nil {
		l := ts.last.Load()
		if l == nil || !l.auth.Equal(a) {
			l = newSeen(a, timeNow())
			ts.last.Store(l)
		}
		if ts.valid(l) {
			return l.tok, Event{}, nil
		}
	}
	if ts.failErr != nil && timeNow().Before(ts.retryAt) {
		return nil, Event{}, ts.failErr // backing off: no request to the provider
	}
	stale, getErr := a, err // what this source found unusable
	var (
		found      *seen
		requested  bool   // this source asked the provider
		refreshErr error  // the refresher's error, redacted
		markErr    error  // the session is dead: the error that says so
		usedRT     string // the refresh token the failed refresh sent
	)
	_, err = ts.s.Update(ts.ctx, ts.name, func(cur AuthObject, exists bool) (AuthObject, error) {
		if !exists { // getErr, if any, names the file or key
			return AuthObject{}, fmt.Errorf("sessionstore: token for %q: %w", ts.name, cmp.Or(getErr, ErrNotFound))
		}
		if !cur.Health.NeedsLogin.IsZero() { // marked meanwhile
			return AuthObject{}, needsLogin(ts.name, cur.Health)
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
				found = newSeen(cur, now)
				return cur, nil // Equal to cur: nothing is written
			}
		}
		if ts.refresh == nil {
			return AuthObject{}, fmt.Errorf("sessionstore: token for %q has expired and the token source has no Refresher", ts.name)
		}
		requested = true
		tok, err := ts.refresh(ts.ctx, cur.Token())
		if err != nil {
			secrets := []string{cur.AccessToken, cur.RefreshToken, cur.TransferToken}
			refreshErr = redactErr(fmt.Errorf("sessionstore: refreshing %q: %w", ts.name, err), secrets...)
			usedRT = cur.RefreshToken
			if invalidGrant(err) && cur.RefreshToken != "" {
				// Refused, and cur is what is stored now, under its
				// lock: the refresh token is dead for everyone. Store
				// the mark; the fenced write fails if the lock was lost.
				markErr = redactErr(fmt.Errorf("sessionstore: refreshing %q: %w: %w", ts.name, ErrNeedsLogin, err), secrets...)
				cur.Health = Health{NeedsLogin: timeNow().UTC(), Reason: "invalid_grant", LastRefresh: cur.Health.LastRefresh}
				return cur, nil
			}
			return AuthObject{}, refreshErr
		}
		if tok == nil || tok.AccessToken == "" {
			return AuthObject{}, fmt.Errorf("sessionstore: refreshing %q: the refresher returned no access token", ts.name)
		}
		now := timeNow()
		next := merge(cur, FromToken(tok))
		if next.Health = cur.Health; !next.Equal(cur) {
			// A new token: stamped. The same one again is not rewritten.
			next.Health = Health{LastRefresh: now.UTC()}
		}
		found = &seen{auth: next.Clone(), tok: next.Token(), since: now}
		return next, nil
	})
	if err == nil {
		ts.failErr, ts.failures = nil, 0
		if markErr != nil { // the mark answers from now on
			return nil, Event{Kind: EventNeedsLogin, AuthType: ts.name, Err: markErr}, markErr
		}
		ts.last.Store(found)
		if requested { // and succeeded: a new token
			return found.tok, Event{Kind: EventRefreshed, AuthType: ts.name, Expiry: found.auth.Expiry}, nil
		}
		return found.tok, Event{}, nil
	}
	if markErr != nil {
		// The mark was not stored (the lock was lost, say): a failed
		// refresh like another, and the session is read again below.
		err = fmt.Errorf("%w (not marked as needing a new login: %w)", refreshErr, err)
	}
	var ev Event
	if requested {
		ev = Event{Kind: EventRefreshFailed, AuthType: ts.name, Err: err}
	}
	if refreshErr != nil && errors.Is(err, refreshErr) {
		if l := ts.afterInvalidGrant(err, usedRT); l != nil {
			ts.last.Store(l)
			ts.failErr, ts.failures = nil, 0
			return l.tok, ev, nil
		}
		ts.failures++
		ts.failErr = err
		ts.retryAt = timeNow().Add(backoff(ts.failures))
	}
	return nil, ev, err
}

func invalidGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}

// needsLogin is the error of a session marked as needing a new login.
func needsLogin(name string, h Health) error {
	reason := ""
	if h.Reason != "" {
		reason = fmt.Sprintf(" (%q)", h.Reason)
	}
	return fmt.Errorf("sessionstore: token for %q: %w: the provider refused its refresh token at %s%s",
		name, ErrNeedsLogin, h.NeedsLogin.UTC().Format(time.RFC3339), reason)
}

// afterInvalidGrant handles an invalid_grant that marked nothing (the lock
// was lost): it returns a valid session another host stored meanwhile, or
// nil.
func (ts *tokenSource) afterInvalidGrant(err error, usedRT string) *seen {
	if !invalidGrant(err) {
		return nil
	}
	a, gerr := ts.s.Get(ts.ctx, ts.name)
	if gerr != nil || a.AccessToken == "" || a.RefreshToken == usedRT || !a.Health.NeedsLogin.IsZero() {
		return nil
	}
	now := timeNow()
	if !a.Expiry.IsZero() && !now.Before(a.Expiry) {
		return nil
	}
	return newSeen(a, now)
}

// valid reports whether l's access token can be used now (see skewFor).
func (ts *tokenSource) valid(l *seen) bool {
	return l.auth.AccessToken != "" && (l.auth.Expiry.IsZero() || timeNow().Add(ts.skewFor(l)).Before(l.auth.Expiry))
}

// skewFor is how long before its expiry l's token counts as expired: the
// skew, or half the token's lifetime if that is shorter.
func (ts *tokenSource) skewFor(l *seen) time.Duration {
	skew := ts.skew
	if life := l.auth.Expiry.Sub(l.since); life > 0 && life/2 < skew {
		skew = life / 2
	}
	return skew
}

// merge returns fresh, with what the token response did not repeat (the
// refresh token above all) kept from old.
func merge(old, fresh AuthObject) AuthObject {
	fresh.RefreshToken = cmp.Or(fresh.RefreshToken, old.RefreshToken)
	fresh.TokenType = cmp.Or(fresh.TokenType, old.TokenType)
	fresh.Scope = cmp.Or(fresh.Scope, old.Scope)
	fresh.Ref = cmp.Or(fresh.Ref, old.Ref)
	fresh.TransferToken = cmp.Or(fresh.TransferToken, old.TransferToken)
	if fresh.Extra == nil && old.Extra != nil {
		fresh.Extra = old.Clone().Extra
	}
	return fresh
}
