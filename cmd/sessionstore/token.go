package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/cliutil"
)

// clientSecretEnv holds the client secret, never a flag (ps shows flags).
const clientSecretEnv = "SESSIONSTORE_CLIENT_SECRET"

// exitNeedsLogin is token's exit code for a session that needs a new login.
const exitNeedsLogin = 4

func runToken(ctx context.Context, b *backend, o *options) int {
	name := o.args[0]
	if err := sessionstore.ValidateAuthType(name); err != nil {
		return o.Fail(err)
	}
	secret := os.Getenv(clientSecretEnv) // empty for a public client
	if o.secretFile != "" {
		var err error
		if secret, err = cliutil.ReadSecretLine("client secret file", o.secretFile); err != nil {
			return o.Fail(err)
		}
	}
	cfg := &oauth2.Config{ClientID: o.clientID, ClientSecret: secret, Endpoint: oauth2.Endpoint{TokenURL: o.tokenURL}}
	var s sessionstore.Store = readingStore{b}
	if b.dir != "" {
		var err error
		if s, err = b.open(ctx); err != nil { // reading takes no lock
			return o.Fail(err)
		}
	}
	// A missing session is reported from a read: the token source would
	// take the record's lock (on a fleet, open a Store) to find it missing.
	_, err := s.Get(ctx, name)
	if err == nil {
		var tok *oauth2.Token
		if tok, err = sessionstore.TokenSource(ctx, s, name, sessionstore.ConfigRefresher(cfg)).Token(); err == nil {
			if !o.jsonOut {
				_, err = fmt.Fprintln(o.Stdout, tok.AccessToken)
			} else {
				err = json.NewEncoder(o.Stdout).Encode(struct {
					Name        string    `json:"name"`
					AccessToken string    `json:"access_token"`
					TokenType   string    `json:"token_type,omitempty"`
					Expiry      time.Time `json:"expiry,omitzero"`
				}{name, tok.AccessToken, tok.TokenType, tok.Expiry.UTC()})
			}
			if err == nil {
				return 0
			}
		}
	}
	switch {
	case errors.Is(err, sessionstore.ErrNeedsLogin):
		o.Fail(err)
		fmt.Fprintf(o.Stderr, "sessionstore: session %s needs a new login: log in again and store the new session (sessionstore import -force)\n", strconv.Quote(name))
		return exitNeedsLogin
	default:
		return o.Fail(b.found(name, err))
	}
}

// readingStore is a fleet as token uses it: Get and List read without a
// Store (no lease, no heartbeat); a write opens the Store.
type readingStore struct{ b *backend }

func (r readingStore) write(ctx context.Context, fn func(sessionstore.Store) error) error {
	s, err := r.b.open(ctx)
	if err != nil {
		return err
	}
	return fn(s)
}

func (r readingStore) Get(ctx context.Context, name string) (sessionstore.AuthObject, error) {
	rec, err := r.b.ReadRecord(ctx, r.b.ring, name)
	if err == nil {
		err = rec.Err
	}
	return rec.Auth, err
}

func (r readingStore) Update(ctx context.Context, name string,
	fn func(sessionstore.AuthObject, bool) (sessionstore.AuthObject, error)) (a sessionstore.AuthObject, err error) {
	err = r.write(ctx, func(s sessionstore.Store) error { a, err = s.Update(ctx, name, fn); return err })
	return a, err
}

func (r readingStore) Set(ctx context.Context, name string, a sessionstore.AuthObject) error {
	return r.write(ctx, func(s sessionstore.Store) error { return s.Set(ctx, name, a) })
}

func (r readingStore) Delete(ctx context.Context, name string) error {
	return r.write(ctx, func(s sessionstore.Store) error { return s.Delete(ctx, name) })
}

func (r readingStore) List(ctx context.Context) ([]string, error) {
	recs, err := r.b.ReadRecords(ctx, r.b.ring)
	names := make([]string, len(recs))
	for i, rec := range recs {
		names[i] = rec.AuthType
	}
	return names, err
}

func (r readingStore) Close() error { return nil } // the backend closes what it opened
