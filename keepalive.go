package sessionstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Bounds of KeepAlive's waits: it reads the session again at least every
// keepAliveMaxWait (a new login, a session stored with an earlier expiry,
// a mark set elsewhere), and never sooner than keepAliveMinWait after a
// read.
const (
	keepAliveMinWait = 100 * time.Millisecond
	keepAliveMaxWait = time.Minute
)

// keepAliveGrace is how long a refresh in flight when KeepAlive's ctx
// ends may still take to finish and be stored: a refresh token the
// provider already rotated is then not lost with the response.
const keepAliveGrace = 10 * time.Second

// KeepAlive keeps the session stored in s under authType refreshed, for as
// long as ctx lives, so that an idle integration's refresh token does not
// expire unused: it refreshes through a TokenSource (with opts) when the
// token counts as expired, by the TokenSource's rule. Run on every
// replica, it still makes one refresh per expiry for the whole fleet: the
// refresh happens under the record's lock, and a replica that finds a
// token another one stored uses it.
//
// KeepAlive returns nil when ctx ends (a refresh in flight then has up to
// 10 s to finish and be stored), and an error wrapping ErrNeedsLogin when
// the session is dead (marked by this KeepAlive or by any other
// TokenSource). Failed refreshes back off as a TokenSource does (1 s,
// doubling up to 1 min) and are tried again; so are other errors (a store
// unreachable for a while, say). A missing session is waited for, read
// again every 1 s doubling up to 1 min: KeepAlive keeps alive the session
// stored later (the first login after a deployment, or a new login after
// "sessionstore rm"). It returns at once for an invalid auth type, a
// closed Store or a nil refresh.
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
	ts := newTokenSource(tctx, s, authType, refresh, opts)
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
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

// untilDue is how long the token this source handed out last stays
// valid: the wait until it counts as expired, within KeepAlive's bounds.
func (ts *tokenSource) untilDue() time.Duration {
	l := ts.last.Load()
	if l == nil || l.auth.Expiry.IsZero() {
		return keepAliveMaxWait
	}
	d := l.auth.Expiry.Sub(timeNow()) - ts.skewFor(l)
	return min(max(d, keepAliveMinWait), keepAliveMaxWait)
}

// untilRetry is how long KeepAlive waits after its failures-th failure in
// a row: until the source's backoff ends, and at least 1 s doubling up to
// 1 min.
func (ts *tokenSource) untilRetry(failures int) time.Duration {
	ts.mu.Lock()
	at := ts.retryAt
	ts.mu.Unlock()
	d := min(minBackoff<<min(failures-1, 6), maxBackoff)
	return min(max(d, at.Sub(timeNow())), maxBackoff)
}
