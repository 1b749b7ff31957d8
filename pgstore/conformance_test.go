package pgstore_test

import (
	"testing"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/pgstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

func TestConformance(t *testing.T) {
	sessionstoretest.TestStore(t, func(t *testing.T) (func() (sessionstore.Store, error), func()) {
		e := newEnv(t)
		return func() (sessionstore.Store, error) {
			return pgstore.Open(ctxT(t), e.pool(t), e.ns, pgstore.WithKeyFile(e.key))
		}, nil
	})
}

func TestConformanceWithoutListen(t *testing.T) {
	sessionstoretest.TestStore(t, func(t *testing.T) (func() (sessionstore.Store, error), func()) {
		e := newEnv(t)
		return func() (sessionstore.Store, error) {
			return pgstore.Open(ctxT(t), e.pool(t), e.ns, pgstore.WithKeyFile(e.key), pgstore.WithoutListen())
		}, nil
	})
}
