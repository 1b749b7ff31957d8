package memstore_test

import (
	"context"
	"fmt"
	"log"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/memstore"
)

// scopeOf is code under test: it takes any sessionstore.Store, so its
// tests can hand it a memstore instead of a directory and a key file.
func scopeOf(ctx context.Context, s sessionstore.Store, authType string) (string, error) {
	a, err := s.Get(ctx, authType)
	if err != nil {
		return "", err
	}
	return a.Scope, nil
}

func ExampleNew() {
	ctx := context.Background()
	store := memstore.New()
	defer store.Close()
	if err := store.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "test", Scope: "global:all"}); err != nil {
		log.Fatal(err)
	}
	scope, err := scopeOf(ctx, store, "server")
	fmt.Println(scope, err)
	_, err = scopeOf(ctx, store, "client")
	fmt.Println(err)
	// Output:
	// global:all <nil>
	// memstore: "client": no session stored
}

// Handle gives a second Store over the same sessions, as a second process
// would have: writes are shared and Update is exclusive across both.
func ExampleStore_Handle() {
	ctx := context.Background()
	a := memstore.New()
	b := a.Handle()
	if err := a.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "from-a"}); err != nil {
		log.Fatal(err)
	}
	got, _ := b.Get(ctx, "server")
	fmt.Println(got.AccessToken)
	a.Close()
	_, err := b.Get(ctx, "server")
	fmt.Println(err)
	// Output:
	// from-a
	// <nil>
}
