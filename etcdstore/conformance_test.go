package etcdstore_test

import (
	"testing"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// Every Store the suite opens has a client of its own: two Stores over one
// prefix are two hosts.
func TestConformance(t *testing.T) {
	sessionstoretest.TestStore(t, func(t *testing.T) (func() (sessionstore.Store, error), func()) {
		e := newEnv(t)
		return func() (sessionstore.Store, error) {
			return etcdstore.Open(ctxT(t), e.client(t), e.prefix, etcdstore.WithKeyFile(e.key))
		}, nil
	})
}
