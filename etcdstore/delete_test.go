package etcdstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/etcdstore"
)

// Remove deletes a record without a key or a Store: whatever key sealed
// it, even one that does not open. It writes no heartbeat, leaves no lock
// behind, and a missing record is ErrNotFound.
func TestRemoveWithoutKey(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	s := e.open(t)
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	require.NoError(t, s.Set(ctx, "client", sampleAuth()))
	require.NoError(t, e.open(t, etcdstore.WithKeyFile(newKeyFile(t))).Set(ctx, "foreign", sampleAuth()))
	put(t, c, e.prefix+"/records/corrupt", []byte("not an age file"))

	rc, calls := e.loggedClient(t)
	for _, name := range []string{"server", "foreign", "corrupt"} {
		require.NoError(t, etcdstore.Remove(ctx, rc, e.prefix, name), name)
	}
	for _, m := range calls.methods() {
		assert.NotEqual(t, "/etcdserverpb.KV/Put", m, "no heartbeat")
	}
	names, err := s.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"client"}, names)
	waitFor(t, "the Store to see the deletion", func() bool {
		_, err := s.Get(ctx, "server")
		return err != nil
	})
	_, err = s.Get(ctx, "server")
	assert.ErrorIs(t, err, sessionstore.ErrNotFound)
	locks, err := c.Get(ctx, e.prefix+"/locks/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, locks.Count, "no lock left behind")

	err = etcdstore.Remove(ctx, rc, e.prefix, "server")
	assert.ErrorIs(t, err, sessionstore.ErrNotFound, "already removed")
	assert.Contains(t, err.Error(), e.prefix+"/records/server")
	assert.ErrorIs(t, etcdstore.Remove(ctx, rc, e.prefix, ""), sessionstore.ErrInvalidAuthType)
	assert.ErrorContains(t, etcdstore.Remove(ctx, rc, "", "server"), "prefix is empty")
}

// No name reaches outside <prefix>/records/.
func TestRemoveHostileNames(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	outside := []string{e.prefix + "/outside", e.prefix + "/hosts/x", e.prefix + "/records/a/b", e.prefix + "-other/records/server"}
	for _, k := range outside {
		put(t, c, k, []byte("not ours"))
	}
	for _, name := range []string{"../outside", "../hosts/x", "a/b", "/../../" + e.prefix + "-other/records/server", "\x00"} {
		assert.Error(t, etcdstore.Remove(ctx, c, e.prefix, name), "%q", name)
	}
	for _, k := range outside {
		resp, err := c.Get(ctx, k, clientv3.WithCountOnly())
		require.NoError(t, err)
		assert.EqualValues(t, 1, resp.Count, "%s is still there", k)
	}
}

// Remove takes the record's lock: while a Store's Update holds it, Remove
// waits (until its context ends, removing nothing), never appearing among
// the Hosts, and runs once the lock is released.
func TestRemoveTakesTheLock(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	s := e.open(t)
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))

	holding, release := make(chan struct{}), make(chan struct{})
	updated := make(chan error, 1)
	go func() {
		_, err := s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
			close(holding)
			<-release
			cur.Scope = "updated"
			return cur, nil
		})
		updated <- err
	}()
	<-holding
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := etcdstore.Remove(short, c, e.prefix, "server")
	require.ErrorIs(t, err, context.DeadlineExceeded, "waits for the lock")
	raw(t, c, e.prefix+"/records/server") // still there

	removed := make(chan error, 1)
	go func() { removed <- etcdstore.Remove(ctx, c, e.prefix, "server") }()
	select {
	case err := <-removed:
		t.Fatalf("Remove returned %v while the lock was held", err)
	case <-time.After(300 * time.Millisecond):
	}
	hosts, err := etcdstore.Hosts(ctx, c, e.prefix)
	require.NoError(t, err)
	assert.Len(t, hosts, 1, "the Store is a host; the waiting Remove is not")
	close(release)
	require.NoError(t, <-updated)
	require.NoError(t, <-removed)
	resp, err := c.Get(ctx, e.prefix+"/records/server", clientv3.WithCountOnly())
	require.NoError(t, err)
	assert.Zero(t, resp.Count)
}
