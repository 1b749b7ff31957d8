package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// clientSecretEnv holds the OAuth client secret for token, unless
// -client-secret-file is given: never a flag value, which ps shows.
const clientSecretEnv = "SESSIONSTORE_CLIENT_SECRET"

// exitNeedsLogin is token's exit code for a session that needs a new
// login: a script can tell it from any other failure.
const exitNeedsLogin = 4

// tokenJSON is token's -json output.
type tokenJSON struct {
	Name        string    `json:"name"`
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type,omitempty"`
	Expiry      time.Time `json:"expiry,omitzero"`
}

func runToken(ctx context.Context, b backend, o *options) int {
	name := o.args[0]
	if err := sessionstore.ValidateAuthType(name); err != nil {
		return fail(o.stderr, err)
	}
	secret, err := clientSecret(o.secretFile)
	if err != nil {
		return fail(o.stderr, err)
	}
	cfg := &oauth2.Config{ClientID: o.clientID, ClientSecret: secret, Endpoint: oauth2.Endpoint{TokenURL: o.tokenURL}}
	s, err := b.TokenStore()
	if err != nil {
		return fail(o.stderr, err)
	}
	// A missing session is reported from a read: the token source would
	// take the record's lock (on etcd, open a Store) to find it missing.
	_, err = s.Get(ctx, name)
	if err == nil {
		var tok *oauth2.Token
		if tok, err = sessionstore.TokenSource(ctx, s, name, sessionstore.ConfigRefresher(cfg)).Token(); err == nil {
			return printToken(o, name, tok)
		}
	}
	switch {
	case errors.Is(err, sessionstore.ErrNeedsLogin):
		fmt.Fprintf(o.stderr, "sessionstore: error: %s\n", errorText(err))
		fmt.Fprintf(o.stderr, "sessionstore: session %s needs a new login: log in again and store the new session (sessionstore import -force)\n", strconv.Quote(name))
		return exitNeedsLogin
	case errors.Is(err, sessionstore.ErrNotFound):
		return fail(o.stderr, b.notFound(name))
	default:
		return fail(o.stderr, err)
	}
}

func printToken(o *options, name string, tok *oauth2.Token) int {
	if o.jsonOut {
		j := tokenJSON{Name: name, AccessToken: tok.AccessToken, TokenType: tok.TokenType}
		if !tok.Expiry.IsZero() {
			j.Expiry = tok.Expiry.UTC()
		}
		if err := json.NewEncoder(o.stdout).Encode(j); err != nil {
			return fail(o.stderr, err)
		}
		return 0
	}
	if _, err := fmt.Fprintln(o.stdout, tok.AccessToken); err != nil {
		return fail(o.stderr, err)
	}
	return 0
}

// clientSecret is the OAuth client secret: the first line of file if
// given (a private file, trusted as a key file is), else
// $SESSIONSTORE_CLIENT_SECRET (empty for a public client).
func clientSecret(file string) (string, error) {
	if file == "" {
		return os.Getenv(clientSecretEnv), nil
	}
	f, err := fsutil.OpenNoFollow(file)
	if err != nil {
		if errors.Is(err, fsutil.ErrSymlink) {
			return "", fmt.Errorf("client secret file %s is a symlink, not followed: %w", strconv.Quote(file), sessionstore.ErrInsecurePermissions)
		}
		return "", fmt.Errorf("client secret file %s: %w", strconv.Quote(file), pathErrCause(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("client secret file %s: %w", strconv.Quote(file), pathErrCause(err))
	}
	if err := fsutil.CheckPrivateFile(strconv.Quote(file), fi); err != nil {
		return "", fmt.Errorf("client secret file %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	defer clear(data)
	if err != nil {
		return "", fmt.Errorf("client secret file %s: %w", strconv.Quote(file), pathErrCause(err))
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("client secret file %s: its first line is empty", strconv.Quote(file))
	}
	return line, nil
}

// TokenStore is the directory's Store: reading from it takes no lock.
func (b *dirBackend) TokenStore() (sessionstore.Store, error) { return b.open() }

// TokenStore is a Store that reads with the fleet's ReadRecord (no lease,
// no heartbeat) and opens the Store that writes only for a refresh.
func (b *fleetBackend) TokenStore() (sessionstore.Store, error) { return readingStore{b}, nil }

// readingStore is the fleet as token uses it: Get reads without a Store;
// anything else opens one.
type readingStore struct{ b *fleetBackend }

func (r readingStore) Get(ctx context.Context, name string) (sessionstore.AuthObject, error) {
	rec, err := r.b.f.ReadRecord(ctx, r.b.ring, name)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	if rec.Err != nil {
		return sessionstore.AuthObject{}, rec.Err
	}
	return rec.Auth, nil
}

func (r readingStore) store(ctx context.Context) (sessionstore.Store, error) {
	if err := r.b.openStore(ctx); err != nil {
		return nil, err
	}
	return r.b.store, nil
}

func (r readingStore) Update(ctx context.Context, name string,
	fn func(sessionstore.AuthObject, bool) (sessionstore.AuthObject, error)) (sessionstore.AuthObject, error) {
	s, err := r.store(ctx)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	return s.Update(ctx, name, fn)
}

func (r readingStore) Set(ctx context.Context, name string, a sessionstore.AuthObject) error {
	s, err := r.store(ctx)
	if err != nil {
		return err
	}
	return s.Set(ctx, name, a)
}

func (r readingStore) Delete(ctx context.Context, name string) error {
	s, err := r.store(ctx)
	if err != nil {
		return err
	}
	return s.Delete(ctx, name)
}

func (r readingStore) List(ctx context.Context) ([]string, error) {
	recs, err := r.b.f.ReadRecords(ctx, r.b.ring)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(recs))
	for i, rec := range recs {
		names[i] = rec.AuthType
	}
	return names, nil
}

func (r readingStore) Close() error { return nil } // the backend closes what it opened
