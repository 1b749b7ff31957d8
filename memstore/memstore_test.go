package memstore_test

import (
	"testing"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/memstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

var _ sessionstore.Store = memstore.New()

func TestConformance(t *testing.T) {
	sessionstoretest.TestStore(t, func(t *testing.T) (func() (sessionstore.Store, error), func()) {
		m := memstore.New()
		return func() (sessionstore.Store, error) { return m.Handle(), nil }, nil
	})
}
