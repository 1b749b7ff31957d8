package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/oauthtest"
)

// exampleKeyFile makes a throwaway key file, as `rekey -init -key FILE`
// would, for the examples.
func exampleKeyFile() (keyFile, dir string) {
	tmp, err := os.MkdirTemp("", "sessionstore-example")
	if err != nil {
		log.Fatal(err)
	}
	k, err := crypto.GenerateKeyring(false)
	if err != nil {
		log.Fatal(err)
	}
	keyFile = filepath.Join(tmp, "sessionstore.key")
	if err := crypto.CreateKeyFile(keyFile, k); err != nil {
		log.Fatal(err)
	}
	return keyFile, filepath.Join(tmp, "sessions")
}

// The session-manager pattern of Podio-style SDKs: Get before
// authenticating, Set after.
func Example() {
	keyFile, dir := exampleKeyFile()
	defer os.RemoveAll(filepath.Dir(keyFile))
	ctx := context.Background()

	store, err := filestore.Open(dir, filestore.WithKeyFile(keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// get(authType): is there a session from an earlier run?
	_, err = store.Get(ctx, "password")
	fmt.Println("first run, stored session:", !errors.Is(err, filestore.ErrNotFound))

	// ... authenticate, then set(authObject, authType):
	err = store.Set(ctx, "password", filestore.AuthObject{
		AccessToken:  "access-token",
		RefreshToken: "refresh-token",
		Expiry:       time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		Ref:          filestore.Ref{Type: "user", ID: 1},
	})
	if err != nil {
		log.Fatal(err)
	}

	auth, err := store.Get(ctx, "password")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("next run, ref:", auth.Ref)
	fmt.Println("printed:", auth)
	// Output:
	// first run, stored session: false
	// next run, ref: user:1
	// printed: {AccessToken:[redacted] RefreshToken:[redacted] TokenType: Expiry:2030-01-01T00:00:00Z Scope: Ref:user:1 TransferToken: Extra:[]}
}

// Update runs its function under the record's lock: increments from any
// number of goroutines or processes are never lost.
func ExampleStore_Update() {
	keyFile, dir := exampleKeyFile()
	defer os.RemoveAll(filepath.Dir(keyFile))
	ctx := context.Background()
	store, err := filestore.Open(dir, filestore.WithKeyFile(keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	for range 3 {
		_, err := store.Update(ctx, "app:12345", func(cur filestore.AuthObject, exists bool) (filestore.AuthObject, error) {
			if !exists {
				cur = filestore.AuthObject{AccessToken: "t", Extra: map[string]any{"uses": 0.0}}
			}
			cur.Extra["uses"] = cur.Extra["uses"].(float64) + 1
			return cur, nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	auth, _ := store.Get(ctx, "app:12345")
	fmt.Println("uses:", auth.Extra["uses"])
	names, _ := store.List(ctx)
	fmt.Println("stored:", names)
	// Output:
	// uses: 3
	// stored: [app:12345]
}

// Migrating from podio-js's file session store.
func ExampleReadPodioJSFile() {
	auth, err := filestore.ReadPodioJSFile(filepath.Join("..", "testdata", "podiojs", "password.json"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(auth.Ref, auth.Expiry.IsZero())
	_, err = filestore.ReadPodioJSFile(filepath.Join("..", "testdata", "podiojs", "cleared.json"))
	fmt.Println(errors.Is(err, filestore.ErrNotFound))
	// Output:
	// user:1 false
	// true
}

// TokenSource shares one session between every process on the host: an
// expired token is refreshed once, under the record's lock, and the new
// one stored before anyone uses it. (This example runs a local fake
// provider; with a real one, cfg is your oauth2.Config.)
func ExampleStore_TokenSource() {
	keyFile, dir := exampleKeyFile()
	defer os.RemoveAll(filepath.Dir(keyFile))
	ctx := context.Background()
	provider := oauthtest.NewServer(time.Hour)
	defer provider.Close()
	cfg := &oauth2.Config{
		ClientID:     oauthtest.ClientID,
		ClientSecret: oauthtest.ClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: provider.TokenURL(), AuthStyle: oauth2.AuthStyleInParams},
	}

	store, err := filestore.Open(dir, filestore.WithKeyFile(keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	tok, err := cfg.PasswordCredentialsToken(ctx, oauthtest.Username, oauthtest.Password)
	if err != nil {
		log.Fatal(err)
	}
	expired := filestore.FromToken(tok)
	expired.Expiry = time.Now().Add(-time.Minute)
	if err := store.Set(ctx, "password", expired); err != nil {
		log.Fatal(err)
	}

	client := oauth2.NewClient(ctx, store.TokenSource(ctx, "password", filestore.ConfigRefresher(cfg)))
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
