package sessionstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// TokenSource shares one session between every process on the host: an
// expired token is refreshed once, under the record's lock, and the new
// one stored before anyone uses it. This example runs a local provider
// from package sessionstoretest; with a real one, cfg is your
// oauth2.Config.
func ExampleTokenSource() {
	tmp, err := os.MkdirTemp("", "sessionstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	keyFile := filepath.Join(tmp, "sessionstore.key") // as `rekey -init -key FILE` makes
	if err := crypto.CreateKeyFile(keyFile, must(crypto.GenerateKeyring(false))); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	provider := sessionstoretest.NewProvider(time.Hour)
	defer provider.Close()
	cfg := provider.Config()

	store, err := filestore.Open(filepath.Join(tmp, "sessions"), filestore.WithKeyFile(keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// Log in once and store the session, here with an expired token.
	tok, err := cfg.PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	if err != nil {
		log.Fatal(err)
	}
	expired := sessionstore.FromToken(tok)
	expired.Expiry = time.Now().Add(-time.Minute)
	if err := store.Set(ctx, "password", expired); err != nil {
		log.Fatal(err)
	}

	ts := sessionstore.TokenSource(ctx, store, "password", sessionstore.ConfigRefresher(cfg))
	client := oauth2.NewClient(ctx, ts)
	for range 3 {
		resp, err := client.Get(provider.APIURL())
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	stored, _ := store.Get(ctx, "password")
	fmt.Println("refreshes:", provider.Stats().Refreshes, "stored token is the new one:", stored.AccessToken != tok.AccessToken)
	// Output:
	// 200 OK
	// 200 OK
	// 200 OK
	// refreshes: 1 stored token is the new one: true
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

// Migrating from podio-js's file session store: read each
// tmp/<authType>.json and Set it.
func ExampleReadPodioJSFile() {
	tmp, err := os.MkdirTemp("", "podiojs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	// What podio-js wrote for authType "password" (tokens made up).
	file := filepath.Join(tmp, "password.json")
	session := `{"accessToken":"example-access","refreshToken":"example-refresh","expiresIn":28800,"ref":{"type":"user","id":1}}`
	if err := os.WriteFile(file, []byte(session), 0o600); err != nil {
		log.Fatal(err)
	}
	written := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	if err := os.Chtimes(file, written, written); err != nil {
		log.Fatal(err)
	}

	auth, err := sessionstore.ReadPodioJSFile(file)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(auth.Ref, auth.Expiry) // the file's mtime + expiresIn
	fmt.Println(auth)

	if err := os.WriteFile(file, []byte("{}"), 0o600); err != nil { // a cleared session
		log.Fatal(err)
	}
	_, err = sessionstore.ReadPodioJSFile(file)
	fmt.Println(errors.Is(err, sessionstore.ErrNotFound))
	// Output:
	// user:1 2026-11-27 17:00:00 +0000 UTC
	// {AccessToken:[redacted] RefreshToken:[redacted] TokenType: Expiry:2026-11-27T17:00:00Z Scope: Ref:user:1 TransferToken: Extra:[]}
	// true
}
