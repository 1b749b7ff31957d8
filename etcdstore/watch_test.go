package etcdstore_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/etcdstore"
)

// gate blocks the watch goroutine at a hook while it is closed.
type gate struct {
	mu     sync.Mutex
	closed chan struct{} // nil: open
}

func (g *gate) close() { g.mu.Lock(); g.closed = make(chan struct{}); g.mu.Unlock() }
func (g *gate) open() {
	g.mu.Lock()
	if g.closed != nil {
		close(g.closed)
		g.closed = nil
	}
	g.mu.Unlock()
}
func (g *gate) pass() {
	g.mu.Lock()
	c := g.closed
	g.mu.Unlock()
	if c != nil {
		<-c
	}
}

// A compaction past the revision a watch starts from ends it; the Store
// drops its cache and starts again from a fresh read, and serves no stale
// value: neither while the watch is down nor after.
func TestWatchCompactionServesNothingStale(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	writer := e.open(t)
	var compact sync.Once
	var compacted bool
	armed := make(chan struct{})
	var freshReads atomic.Int32 // the watch's (re)starts
	reader := openOn(t, e.client(t), e.prefix, etcdstore.WithKeyFile(e.key),
		etcdstore.WithHooks(func() { freshReads.Add(1) }, func() {
			select {
			case <-armed:
			default:
				return
			}
			compact.Do(func() {
				// Between the fresh read and the watch: a change the new
				// watch must not miss, then history compacted past it.
				// (assert, not require: this is the watch goroutine.)
				assert.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v2"}))
				resp, err := c.Get(ctx, "compact-probe")
				if assert.NoError(t, err) {
					_, err = c.Compact(ctx, resp.Header.Revision)
					compacted = assert.NoError(t, err)
				}
			})
		}, nil))
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v1"}))
	waitFor(t, "the reader caches v1", func() bool {
		got, err := reader.Get(ctx, "server")
		return err == nil && got.AccessToken == "v1" && reader.Watching()
	})
	close(armed)
	reader.CancelWatch()
	waitFor(t, "the watch to restart after the compaction", func() bool {
		return freshReads.Load() >= 3 && reader.Watching()
	})
	require.True(t, compacted)
	got, err := reader.Get(ctx, "server")
	require.NoError(t, err)
	assert.Equal(t, "v2", got.AccessToken, "no stale value after the compaction")

	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v3"}))
	waitFor(t, "the restarted watch delivers later writes", func() bool {
		got, err := reader.Get(ctx, "server")
		return err == nil && got.AccessToken == "v3"
	})
}

// While its watch is down (canceled, not yet restarted), a Store reads
// every Get from etcd instead of serving its cache.
func TestWatchCanceledServesNothingStale(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	writer := e.open(t)
	var g gate
	reader := openOn(t, e.client(t), e.prefix, etcdstore.WithKeyFile(e.key), etcdstore.WithHooks(g.pass, nil, nil))
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v1"}))
	waitFor(t, "the reader caches v1", func() bool {
		got, err := reader.Get(ctx, "server")
		return err == nil && got.AccessToken == "v1" && reader.Watching()
	})
	g.close() // the restart waits
	defer g.open()
	reader.CancelWatch()
	waitFor(t, "the reader to notice", func() bool { return !reader.Watching() })
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v2"}))
	got, err := reader.Get(ctx, "server")
	require.NoError(t, err)
	assert.Equal(t, "v2", got.AccessToken, "no stale value while the watch is down")
	g.open()
	waitFor(t, "the watch to come back", reader.Watching)
	got, err = reader.Get(ctx, "server")
	require.NoError(t, err)
	assert.Equal(t, "v2", got.AccessToken)
}

// A watch that stops delivering (here: its goroutine is stuck) stops
// vouching for the cache within WithMaxStaleness: past that bound, Get
// returns the newest value, read from etcd.
func TestStalenessBound(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	writer := e.open(t)
	var g gate
	const bound = 300 * time.Millisecond
	reader := openOn(t, e.client(t), e.prefix, etcdstore.WithKeyFile(e.key),
		etcdstore.WithMaxStaleness(bound), etcdstore.WithHooks(nil, nil, g.pass))
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v1"}))
	waitFor(t, "the reader caches v1", func() bool {
		got, err := reader.Get(ctx, "server")
		return err == nil && got.AccessToken == "v1" && reader.Watching()
	})
	g.close() // the next watch response (v2's event) blocks the watch goroutine
	defer g.open()
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v2"}))
	time.Sleep(bound) // the bound itself: no value older than this may be served
	got, err := reader.Get(ctx, "server")
	require.NoError(t, err)
	assert.Equal(t, "v2", got.AccessToken, "nothing staler than WithMaxStaleness")
	assert.False(t, reader.Watching())
}

// A new Store serves from its cache as soon as etcd answers a progress
// request, not a third of WithMaxStaleness later: etcd drops the first
// request, sent while the new watch catches up, and the Store asks again
// until answered.
func TestNewStoreServesWithoutWaitingForTheNextProgressRequest(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	require.NoError(t, e.open(t).Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v0"}))
	// The next regular request would come 20 minutes after the first.
	s := e.open(t, etcdstore.WithMaxStaleness(time.Hour))
	waitFor(t, "the Store to serve from its cache", s.Watching)
	_, err := s.Get(ctx, "server") // fills the cache
	require.NoError(t, err)
	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.Equal(t, "v0", got.AccessToken)
	assert.Zero(t, testing.AllocsPerRun(10, func() { s.Get(ctx, "server") }), "served from the cache")
}
