package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
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
func ExampleOpen() {
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
	fmt.Println("first run, stored session:", !errors.Is(err, sessionstore.ErrNotFound))

	// ... authenticate, then set(authObject, authType):
	err = store.Set(ctx, "password", sessionstore.AuthObject{
		AccessToken:  "access-token",
		RefreshToken: "refresh-token",
		Expiry:       time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		Ref:          sessionstore.Ref{Type: "user", ID: 1},
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
		_, err := store.Update(ctx, "app:12345", func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error) {
			if !exists {
				cur = sessionstore.AuthObject{AccessToken: "t", Extra: map[string]any{"uses": 0.0}}
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

// Delete removes a session, so that the next run logs in again; deleting
// a missing one is not an error.
func ExampleStore_Delete() {
	keyFile, dir := exampleKeyFile()
	defer os.RemoveAll(filepath.Dir(keyFile))
	ctx := context.Background()
	store, err := filestore.Open(dir, filestore.WithKeyFile(keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	if err := store.Set(ctx, "client", sessionstore.AuthObject{AccessToken: "t"}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(store.Delete(ctx, "client"))
	_, err = store.Get(ctx, "client")
	fmt.Println(errors.Is(err, sessionstore.ErrNotFound))
	fmt.Println(store.Delete(ctx, "client"))
	// Output:
	// <nil>
	// true
	// <nil>
}

// List returns the stored auth types, sorted, whatever their file names.
func ExampleStore_List() {
	keyFile, dir := exampleKeyFile()
	defer os.RemoveAll(filepath.Dir(keyFile))
	ctx := context.Background()
	store, err := filestore.Open(dir, filestore.WithKeyFile(keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	for _, name := range []string{"server", "user@example.com", "app:12345"} {
		if err := store.Set(ctx, name, sessionstore.AuthObject{AccessToken: "t"}); err != nil {
			log.Fatal(err)
		}
	}
	names, err := store.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(names)
	files, _ := filepath.Glob(filepath.Join(dir, "*.age"))
	for _, f := range files {
		fmt.Println(filepath.Base(f))
	}
	// Output:
	// [app:12345 server user@example.com]
	// app%3a12345.age
	// server.age
	// user%40example.com.age
}

// Rotate puts a new primary key first in the key file, reseals every
// record under it and retires the old key; Check reports which key opens
// each record. Both are safe while other processes use the store (this is
// what `rekey -key FILE -dir DIR` runs).
func ExampleRotate() {
	keyFile, dir := exampleKeyFile()
	defer os.RemoveAll(filepath.Dir(keyFile))
	ctx := context.Background()
	store, err := filestore.Open(dir, filestore.WithKeyFile(keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := store.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "t"}); err != nil {
		log.Fatal(err)
	}

	report, err := filestore.Rotate(ctx, keyFile, []string{dir}, filestore.RotateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("records:", len(report.Records), "old keys retired:", report.Retired)

	statuses, err := filestore.Check(ctx, keyFile, []string{dir}, filestore.CheckOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, st := range statuses {
		fmt.Println(st.AuthType, "opens with the primary:", st.Err == nil && st.Key == 0)
	}
	auth, err := store.Get(ctx, "server") // the running Store follows the rotation
	fmt.Println(auth.AccessToken, err)
	// Output:
	// records: 1 old keys retired: 1
	// server opens with the primary: true
	// t <nil>
}
