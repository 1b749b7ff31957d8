package sessionstoretest_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/memstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// racyStore breaks Update's exclusivity: it reads, calls fn and writes
// without holding any lock, as a store without locking would.
type racyStore struct{ *memstore.Store }

func (s racyStore) Update(ctx context.Context, name string,
	fn func(sessionstore.AuthObject, bool) (sessionstore.AuthObject, error)) (sessionstore.AuthObject, error) {
	cur, err := s.Get(ctx, name)
	exists := err == nil
	next, err := fn(cur, exists)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	return next, s.Set(ctx, name, next)
}

// TestBrokenBackendFails runs the suite, in a child process, on a backend
// that loses updates, and checks that the suite catches it.
func TestBrokenBackendFails(t *testing.T) {
	if os.Getenv("SESSIONSTORETEST_BROKEN") == "1" {
		sessionstoretest.TestStore(t, func(t *testing.T) (func() (sessionstore.Store, error), func()) {
			m := memstore.New()
			return func() (sessionstore.Store, error) { return racyStore{m.Handle()}, nil }, nil
		})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenBackendFails$", "-test.v")
	cmd.Env = append(os.Environ(), "SESSIONSTORETEST_BROKEN=1")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the suite must fail on a store that loses updates:\n%s", out)
	assert.Contains(t, string(out), "--- FAIL: TestBrokenBackendFails/UpdateHonoursContext")
	assert.Contains(t, string(out), "--- FAIL: TestBrokenBackendFails/UpdateExclusiveAcrossStores", "it loses updates")
	assert.Contains(t, string(out), "--- PASS: TestBrokenBackendFails/RoundTrip", "the rest of the suite still runs")
}
