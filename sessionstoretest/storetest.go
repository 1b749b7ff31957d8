// Package sessionstoretest helps test sessionstore backends and the
// programs that use them: TestStore is the conformance suite that every
// sessionstore.Store passes, and Provider a real OAuth 2 provider on
// loopback that rotates refresh tokens.
package sessionstoretest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
)

// MakeStores makes fresh, empty backing data (a directory, an etcd prefix)
// for one subtest and returns open, which opens a new Store over that data
// each time it is called, as another process or host would, and stop,
// which releases the data once every Store opened has been closed.
type MakeStores func(t *testing.T) (open func() (sessionstore.Store, error), stop func())

// Visibility bounds how long TestStore waits for one Store to see
// another's write (a watcher's event, an etcd watch).
const Visibility = 5 * time.Second

// TestStore runs the conformance suite on the backend that mk makes. It
// checks every rule of sessionstore.Store: valid and invalid auth types,
// values owned by the caller, Update's exclusivity between two Stores over
// the same data and its no-write rules, visibility of one Store's writes to
// the other, reads that never fail while other Stores write, Delete, List
// and Close. It calls mk once per subtest.
func TestStore(t *testing.T, mk MakeStores) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func() sessionstore.Store)
	}{
		{"AuthTypes", testAuthTypes},
		{"InvalidAuthTypes", testInvalidAuthTypes},
		{"Missing", testMissing},
		{"RoundTrip", testRoundTrip},
		{"CallerOwnsValues", testCallerOwnsValues},
		{"UpdateRunsFnOnce", testUpdateRunsFnOnce},
		{"UpdateErrorWritesNothing", testUpdateErrorWritesNothing},
		{"UpdateExclusiveAcrossStores", testUpdateExclusive},
		{"UpdateHonoursContext", testUpdateHonoursContext},
		{"WritesVisibleToOtherStore", testVisibility},
		{"ReadsDuringConcurrentSetsNeverGoBack", testReadsDuringSets},
		{"DeleteAndList", testDeleteAndList},
		{"Close", testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			openFn, stop := mk(t)
			if stop != nil {
				t.Cleanup(stop) // after the Stores' cleanups, which run first
			}
			tt.fn(t, func() sessionstore.Store {
				t.Helper()
				s, err := openFn()
				require.NoError(t, err, "open a Store")
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// sample is a session with every field set; Extra holds what JSON
// decodes to (float64 numbers, []any, map[string]any), so that every
// backend returns it unchanged.
func sample(i int) sessionstore.AuthObject {
	return sessionstore.AuthObject{
		AccessToken:   fmt.Sprintf("access-%d", i),
		RefreshToken:  fmt.Sprintf("refresh-%d", i),
		TokenType:     "Bearer",
		Expiry:        time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC),
		Scope:         "global:all",
		Ref:           sessionstore.Ref{Type: "user", ID: int64(i)},
		TransferToken: "transfer",
		Extra:         map[string]any{"n": float64(i), "list": []any{"a", 1.5}, "obj": map[string]any{"k": "v"}},
	}
}

func assertSame(t *testing.T, want, got sessionstore.AuthObject, msgAndArgs ...any) {
	t.Helper()
	assert.True(t, want.Equal(got), append([]any{"want %+v, got %+v", want, got}, msgAndArgs...)...)
}

func assertStored(t *testing.T, s sessionstore.Store, name string, want sessionstore.AuthObject, msgAndArgs ...any) {
	t.Helper()
	got, err := s.Get(ctxOf(t), name)
	if assert.NoError(t, err, msgAndArgs...) {
		assertSame(t, want, got, msgAndArgs...)
	}
}

func list(t *testing.T, s sessionstore.Store) []string {
	t.Helper()
	names, err := s.List(ctxOf(t))
	require.NoError(t, err)
	return names
}

// notCalled is an Update fn that fails the test if it runs.
func notCalled(t *testing.T, msg string) func(sessionstore.AuthObject, bool) (sessionstore.AuthObject, error) {
	return func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		t.Error(msg)
		return cur, nil
	}
}

// validNames are auth types every backend accepts, hostile ones included.
var validNames = []string{
	"server", "client", "password", "app", "app:12345", "user@example.com",
	"UPPER", "Server", ".hidden", "..", "../../etc/passwd", "a/b", `a\b`, "con", "nul.txt",
	"with space", "%41", "ümlaut", "日本語", "emoji-🔑", "tab\tname", "new\nline",
	strings.Repeat("x", sessionstore.MaxAuthTypeLen),
}

func testAuthTypes(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	s := open()
	for i, name := range validNames {
		require.NoError(t, s.Set(ctx, name, sample(i)), "Set %q", name)
	}
	for i, name := range validNames {
		assertStored(t, s, name, sample(i), "name %q", name)
	}
	assert.ElementsMatch(t, validNames, list(t, s), "List returns every name exactly")
	for _, name := range validNames {
		assert.NoError(t, s.Delete(ctx, name), "Delete %q", name)
	}
	assert.Empty(t, list(t, s))
}

func testInvalidAuthTypes(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	s := open()
	for _, name := range []string{"", "nul\x00byte", "bad-utf8-\xff", strings.Repeat("x", sessionstore.MaxAuthTypeLen+1)} {
		_, err := s.Get(ctx, name)
		assert.ErrorIs(t, err, sessionstore.ErrInvalidAuthType, "Get %q", name)
		assert.ErrorIs(t, s.Set(ctx, name, sample(1)), sessionstore.ErrInvalidAuthType, "Set %q", name)
		_, err = s.Update(ctx, name, notCalled(t, fmt.Sprintf("Update %q must not call fn", name)))
		assert.ErrorIs(t, err, sessionstore.ErrInvalidAuthType, "Update %q", name)
		assert.ErrorIs(t, s.Delete(ctx, name), sessionstore.ErrInvalidAuthType, "Delete %q", name)
	}
	assert.Empty(t, list(t, s), "nothing was stored")
}

func testMissing(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	s := open()
	_, err := s.Get(ctx, "server")
	assert.ErrorIs(t, err, sessionstore.ErrNotFound)
	assert.NoError(t, s.Delete(ctx, "server"), "Delete of a missing record is nil")
	var sawExists, calls = true, 0
	got, err := s.Update(ctx, "server", func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error) {
		calls++
		sawExists = exists
		assertSame(t, sessionstore.AuthObject{}, cur, "a missing record's cur is the zero value")
		return sample(1), nil
	})
	require.NoError(t, err)
	assert.Equal(t, 1, calls)
	assert.False(t, sawExists, "exists is false for a missing record")
	assertSame(t, sample(1), got)
	assertStored(t, s, "server", sample(1))
}

func testRoundTrip(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	s := open()
	require.NoError(t, s.Set(ctx, "server", sample(1)))
	require.NoError(t, s.Set(ctx, "server", sample(2)), "Set replaces")
	assertStored(t, s, "server", sample(2), "Extra comes back as JSON decodes it")
	minimal := sessionstore.AuthObject{AccessToken: "only-access"}
	require.NoError(t, s.Set(ctx, "client", minimal))
	assertStored(t, s, "client", minimal, "a zero expiry stays zero")

	// Health is stored with the session, and replaced with it: a Set
	// without a needs-login mark clears one.
	marked := sample(3)
	marked.Health = sessionstore.Health{NeedsLogin: time.Date(2030, 1, 2, 3, 4, 6, 0, time.UTC), Reason: "invalid_grant",
		LastRefresh: time.Date(2030, 1, 2, 2, 4, 5, 0, time.UTC)}
	require.NoError(t, s.Set(ctx, "server", marked))
	assertStored(t, s, "server", marked)
	require.NoError(t, s.Set(ctx, "server", sample(4)))
	assertStored(t, s, "server", sample(4), "a new session clears the mark")
}

func testCallerOwnsValues(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	s := open()
	in := sample(1)
	require.NoError(t, s.Set(ctx, "server", in))
	in.Extra["n"] = float64(99)
	in.Extra["obj"].(map[string]any)["k"] = "changed after Set"

	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assertSame(t, sample(1), got, "changing the value passed to Set changes nothing stored")
	got.Extra["n"] = float64(42)
	got.Extra["list"].([]any)[0] = "changed after Get"
	got.AccessToken = "changed"

	assertStored(t, s, "server", sample(1), "changing a value from Get changes nothing stored")

	_, err = s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		cur.Extra["obj"].(map[string]any)["k"] = "changed in a failing fn"
		return cur, errors.New("fail")
	})
	require.Error(t, err)
	returned, err := s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		cur.Scope = "updated"
		return cur, nil
	})
	require.NoError(t, err)
	returned.Extra["n"] = float64(7)
	want := sample(1)
	want.Scope = "updated"
	assertStored(t, s, "server", want, "neither a failed fn's changes nor Update's result are shared with the store")
}

func testUpdateRunsFnOnce(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	s := open()
	require.NoError(t, s.Set(ctx, "server", sample(1)))
	calls := 0
	got, err := s.Update(ctx, "server", func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error) {
		calls++
		assert.True(t, exists)
		assertSame(t, sample(1), cur, "fn sees the stored value")
		return sample(2), nil
	})
	require.NoError(t, err)
	assert.Equal(t, 1, calls, "fn runs exactly once")
	assertSame(t, sample(2), got, "Update returns what it stored")

	got, err = s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		return cur, nil
	})
	require.NoError(t, err)
	assertSame(t, sample(2), got, "an Update that returns cur unchanged")
	assertStored(t, s, "server", sample(2), "an Update that returns cur unchanged keeps the value")
}

func testUpdateErrorWritesNothing(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	s := open()
	require.NoError(t, s.Set(ctx, "server", sample(1)))
	boom := errors.New("fn failed")
	fail := func(sessionstore.AuthObject, bool) (sessionstore.AuthObject, error) { return sample(2), boom }
	_, err := s.Update(ctx, "server", fail)
	assert.ErrorIs(t, err, boom, "Update returns fn's error")
	assertStored(t, s, "server", sample(1), "nothing written")

	_, err = s.Update(ctx, "absent", fail)
	assert.ErrorIs(t, err, boom)
	_, err = s.Get(ctx, "absent")
	assert.ErrorIs(t, err, sessionstore.ErrNotFound, "a failed Update creates nothing")
}

func testUpdateExclusive(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	stores := []sessionstore.Store{open(), open()}
	const perWorker, workersPerStore = 15, 3
	// The first fn to run waits (up to half a second) for a second one to
	// start: a Store that is not exclusive lets it, and loses an update
	// whatever the scheduling; an exclusive one makes it wait once.
	var calls atomic.Int32
	second := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range stores {
		for range workersPerStore {
			wg.Go(func() {
				for range perWorker {
					_, err := s.Update(ctx, "counter", func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error) {
						if !exists {
							cur = sessionstore.AuthObject{AccessToken: "t", Extra: map[string]any{"n": float64(0)}}
						}
						cur.Extra["n"] = cur.Extra["n"].(float64) + 1
						switch calls.Add(1) {
						case 1:
							select {
							case <-second:
							case <-time.After(500 * time.Millisecond):
							}
						case 2:
							close(second)
						}
						return cur, nil
					})
					if !assert.NoError(t, err) {
						return
					}
				}
			})
		}
	}
	wg.Wait()
	want := float64(len(stores) * workersPerStore * perWorker)
	for i, s := range stores {
		assert.Eventually(t, func() bool {
			got, err := s.Get(ctx, "counter")
			return err == nil && got.Extra["n"] == want
		}, Visibility, 5*time.Millisecond, "store %d sees all %v increments: none lost", i, want)
	}
}

// testReadsDuringSets: Stores Set one name concurrently while goroutines
// of another Store read it: no read fails (a reader that is late to see a
// write must not take a newer record it already saw for a rollback), and
// the last value read is one that was written.
func testReadsDuringSets(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	reader := open()
	require.NoError(t, reader.Set(ctx, "server", sample(0)))
	const writers, sets, readers = 3, 25, 2
	var done atomic.Bool
	var rwg, wwg sync.WaitGroup
	for range readers {
		rwg.Go(func() {
			for !done.Load() {
				if _, err := reader.Get(ctx, "server"); !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	for w := range writers {
		s := open()
		wwg.Go(func() {
			for i := range sets {
				if !assert.NoError(t, s.Set(ctx, "server", sample(100*(w+1)+i))) {
					return
				}
			}
		})
	}
	wwg.Wait()
	done.Store(true)
	rwg.Wait()
	got, err := open().Get(ctx, "server")
	require.NoError(t, err)
	n := int(got.Extra["n"].(float64))
	assert.True(t, n >= 100 && n%100 == sets-1, "the last value stored is some writer's last Set, got %d", n)
}

func testUpdateHonoursContext(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	s1, s2 := open(), open()
	require.NoError(t, s1.Set(ctx, "server", sample(1)))
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s1.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
			close(holding)
			<-release
			return cur, nil
		})
		done <- err
	}()
	<-holding
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err := s2.Update(short, "server", notCalled(t, "fn does not run without the lock"))
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a lock wait ends with its context")
	close(release)
	require.NoError(t, <-done)
}

func testVisibility(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	s1, s2 := open(), open()
	require.NoError(t, s1.Set(ctx, "server", sample(1)))
	assertStored(t, s2, "server", sample(1), "a new Store sees a record written before it read")

	for i := 2; i <= 4; i++ {
		require.NoError(t, s1.Set(ctx, "server", sample(i)))
		assert.Eventually(t, func() bool {
			got, err := s2.Get(ctx, "server")
			return err == nil && got.Equal(sample(i))
		}, Visibility, time.Millisecond, "the other Store sees write %d", i)
	}
	require.NoError(t, s1.Delete(ctx, "server"))
	assert.Eventually(t, func() bool {
		_, err := s2.Get(ctx, "server")
		return errors.Is(err, sessionstore.ErrNotFound)
	}, Visibility, time.Millisecond, "the other Store sees the delete")
	assert.Empty(t, list(t, s2))
}

func testDeleteAndList(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	s := open()
	assert.Empty(t, list(t, s), "a new store is empty")
	for i, name := range []string{"server", "app:12345", "client", "Zeta", "alpha"} {
		require.NoError(t, s.Set(ctx, name, sample(i)))
	}
	assert.Equal(t, []string{"Zeta", "alpha", "app:12345", "client", "server"}, list(t, s), "sorted")
	require.NoError(t, s.Delete(ctx, "client"))
	require.NoError(t, s.Delete(ctx, "client"), "twice")
	_, err := s.Get(ctx, "client")
	assert.ErrorIs(t, err, sessionstore.ErrNotFound)
	assert.Equal(t, []string{"Zeta", "alpha", "app:12345", "server"}, list(t, s))
	require.NoError(t, s.Set(ctx, "client", sample(9)), "a deleted name can be set again")
	assertStored(t, s, "client", sample(9))
}

func testClose(t *testing.T, open func() sessionstore.Store) {
	ctx := ctxOf(t)
	s1, s2 := open(), open()
	require.NoError(t, s1.Set(ctx, "server", sample(1)))
	_, err := s1.Get(ctx, "server") // cached, where the backend caches
	require.NoError(t, err)
	require.NoError(t, s1.Close())
	assert.NotPanics(t, func() { s1.Close() }, "a second Close")

	_, err = s1.Get(ctx, "server")
	assert.ErrorIs(t, err, sessionstore.ErrClosed, "Get")
	assert.ErrorIs(t, s1.Set(ctx, "server", sample(2)), sessionstore.ErrClosed, "Set")
	_, err = s1.Update(ctx, "server", notCalled(t, "fn runs on a closed Store"))
	assert.ErrorIs(t, err, sessionstore.ErrClosed, "Update")
	assert.ErrorIs(t, s1.Delete(ctx, "server"), sessionstore.ErrClosed, "Delete")
	_, err = s1.List(ctx)
	assert.ErrorIs(t, err, sessionstore.ErrClosed, "List")

	assertStored(t, s2, "server", sample(1), "another Store over the same data stays open, the data intact")
}
