package sessionstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

const (
	keepAliveMinWait = 100 * time.Millisecond
	keepAliveMaxWait = time.Minute // the session is read again at least this often
	// A refresh in flight when ctx ends may take this long to be stored,
	// so that a refresh token the provider already rotated is not lost.
	keepAliveGrace = 10 * time.Second
)

// KeepAlive refreshes the session stored in s under authType through a
// TokenSource (with opts) whenever its token counts as expired, for as long
// as ctx lives, so that an idle integration's refresh token does not expire
// unused; run on every replica, it still refreshes once per expiry for the
// fleet. Failures back off as a TokenSource's do and are tried again; a
// missing session is waited for (read again every 1 s, doubling up to
// 1 min). KeepAlive returns nil when ctx ends (a refresh in flight has 10 s
// more to be stored), an error wrapping ErrNeedsLogin when the session is
// dead, and at once for an invalid auth type, a closed Store or a nil
// refresh.
func KeepAlive(ctx context.Context, s Store, authType string, refresh Refresher, opts ...TokenSourceOption) error {
	if refresh == nil {
		return fmt.Errorf("sessionstore: keeping %q alive: no Refresher", authType)
	}
	if err := ValidateAuthType(authType); err != nil {
		return err
	}
	// The token source's context outlives ctx by the grace period, for a
	// refresh already under way; no new one starts once ctx has ended.
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(keepAliveGrace, cancel) })
	defer stop()
	ts := TokenSource(tctx, s, authType, refresh, opts...).(*tokenSource)
	failures := 0
	for ctx.Err() == nil {
		// A missing session is waited for with reads alone: Token would
		// take the record's lock to find it missing.
		_, err := s.Get(tctx, authType)
		if err == nil {
			_, err = ts.Token()
		}
		var wait time.Duration
		switch {
		case err == nil:
			failures = 0
			wait = ts.untilDue()
		case errors.Is(err, ErrNeedsLogin), errors.Is(err, ErrClosed), errors.Is(err, ErrInvalidAuthType):
			if ctx.Err() != nil {
				return nil
			}
			return err
		default:
			failures++
			wait = ts.untilRetry(failures)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait): // collected once unreferenced (Go 1.23)
		}
	}
	return nil
}

// untilDue is how long until the token last handed out counts as
// expired, within KeepAlive's bounds.
func (ts *tokenSource) untilDue() time.Duration {
	l := ts.last.Load()
	if l == nil || l.auth.Expiry.IsZero() {
		return keepAliveMaxWait
	}
	d := l.auth.Expiry.Sub(timeNow()) - ts.skewFor(l)
	return min(max(d, keepAliveMinWait), keepAliveMaxWait)
}

// untilRetry is how long KeepAlive waits after its failures-th failure in
// a row: at least backoff(failures), and until the source's backoff ends.
func (ts *tokenSource) untilRetry(failures int) time.Duration {
	ts.mu.Lock()
	at := ts.retryAt
	ts.mu.Unlock()
	return min(max(backoff(failures), at.Sub(timeNow())), time.Minute)
}
