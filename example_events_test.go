package sessionstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/memstore"
)

// WithEvents reports each refresh a token source makes: here to log/slog
// and to counters, which a program would export as metrics and alert on
// (EventNeedsLogin: someone has to log in again). The refresher stands for
// a provider that refreshes once, then refuses the refresh token.
func ExampleWithEvents() {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{} // for a stable output
			}
			return a
		},
	}))
	var refreshed, failed, needsLogin atomic.Int64
	onEvent := func(e sessionstore.Event) {
		switch e.Kind {
		case sessionstore.EventRefreshed:
			refreshed.Add(1)
			logger.Info("session refreshed", "auth_type", e.AuthType, "expiry", e.Expiry)
		case sessionstore.EventRefreshFailed:
			failed.Add(1)
			logger.Warn("refresh failed", "auth_type", e.AuthType, "err", e.Err)
		case sessionstore.EventNeedsLogin:
			needsLogin.Add(1)
			logger.Error("session needs a new login", "auth_type", e.AuthType, "err", e.Err)
		}
	}

	calls := 0
	refresh := func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		if calls++; calls == 1 {
			return &oauth2.Token{AccessToken: "new", RefreshToken: "rt-2", Expiry: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, nil
		}
		return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, ErrorCode: "invalid_grant"}
	}
	store := memstore.New()
	expired := sessionstore.AuthObject{AccessToken: "old", RefreshToken: "rt-1", Expiry: time.Now().Add(-time.Minute)}
	store.Set(ctx, "server", expired)
	ts := sessionstore.TokenSource(ctx, store, "server", refresh, sessionstore.WithEvents(onEvent))

	ts.Token() // refreshed
	expired.RefreshToken = "rt-2"
	store.Set(ctx, "server", expired) // expired again
	ts.Token()                        // refused: the session is marked
	_, err := ts.Token()              // no request: the mark answers
	fmt.Println("needs a new login:", errors.Is(err, sessionstore.ErrNeedsLogin))
	fmt.Printf("refreshed %d, failed %d, needs login %d\n", refreshed.Load(), failed.Load(), needsLogin.Load())
	// Output:
	// level=INFO msg="session refreshed" auth_type=server expiry=2030-01-01T00:00:00.000Z
	// level=ERROR msg="session needs a new login" auth_type=server err="sessionstore: refreshing \"server\": session needs a new login: oauth2: \"invalid_grant\""
	// needs a new login: true
	// refreshed 1, failed 0, needs login 1
}
