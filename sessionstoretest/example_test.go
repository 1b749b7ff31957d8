package sessionstoretest_test

import (
	"context"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/memstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// A backend runs the conformance suite from its own tests, with a factory
// that makes fresh backing data per subtest and opens as many Stores over
// it as the suite asks for (filestore opens a directory; etcdstore a
// prefix of one etcd cluster).
func ExampleTestStore() {
	// In the backend's _test.go file:
	testConformance := func(t *testing.T) {
		sessionstoretest.TestStore(t, func(t *testing.T) (func() (sessionstore.Store, error), func()) {
			shared := memstore.New() // the backing data: a directory, an etcd prefix
			open := func() (sessionstore.Store, error) { return shared.Handle(), nil }
			return open, func() {}
		})
	}
	_ = testConformance // func TestConformance(t *testing.T) { testConformance(t) }
}

// The Provider is a real OAuth 2 server on loopback that rotates refresh
// tokens: reusing one gets invalid_grant, as from strict providers.
func ExampleProvider() {
	ctx := context.Background()
	p := sessionstoretest.NewProvider(time.Hour)
	defer p.Close()
	cfg := p.Config()

	tok, err := cfg.PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	if err != nil {
		log.Fatal(err)
	}
	refreshed, err := sessionstore.ConfigRefresher(cfg)(ctx, tok)
	fmt.Println(refreshed != nil, err)
	_, err = sessionstore.ConfigRefresher(cfg)(ctx, tok) // the same refresh token again
	fmt.Println(err != nil, p.Stats().Refreshes, p.Stats().InvalidGrants)
	// Output:
	// true <nil>
	// true 1 1
}
