package etcdstore_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

// raw returns the bytes stored under a record key.
func raw(t *testing.T, c *clientv3.Client, key string) []byte {
	t.Helper()
	resp, err := c.Get(ctxT(t), key)
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1, "%s exists", key)
	return resp.Kvs[0].Value
}

func put(t *testing.T, c *clientv3.Client, key string, value []byte) {
	t.Helper()
	_, err := c.Put(ctxT(t), key, string(value))
	require.NoError(t, err)
}

// A record binds its prefix and its name: copied to another name, or to
// the same name under another prefix, it does not open; nor does a file
// record (no namespace) copied into etcd.
func TestCopiedRecordIsTampered(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	s := openOn(t, c, e.prefix, etcdstore.WithKeyFile(e.key))
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	sealed := raw(t, c, e.prefix+"/records/server")

	put(t, c, e.prefix+"/records/client", sealed)
	_, err := s.Get(ctx, "client")
	assert.ErrorIs(t, err, sessionstore.ErrTampered, "copied to another name")

	other := e.prefix + "-other"
	put(t, c, other+"/records/server", sealed)
	_, err = openOn(t, c, other, etcdstore.WithKeyFile(e.key)).Get(ctx, "server")
	assert.ErrorIs(t, err, sessionstore.ErrTampered, "copied to another prefix")

	ring, err := crypto.LoadKeyring(e.key)
	require.NoError(t, err)
	auth, err := json.Marshal(map[string]string{"access_token": "file"})
	require.NoError(t, err)
	file, err := envelope.Seal(ring, &envelope.Record{AuthType: "password", Seq: 1, Written: time.Now(), Auth: auth})
	require.NoError(t, err)
	put(t, c, e.prefix+"/records/password", file)
	_, err = s.Get(ctx, "password")
	assert.ErrorIs(t, err, sessionstore.ErrTampered, "a file record copied into etcd")
	assert.Contains(t, err.Error(), e.prefix+"/records/password", "the error names the key")

	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, sampleAuth().Equal(got), "the original is untouched: got %v", got)
}

// An older record put back in place is sessionstore.ErrRollback for a
// Store that saw the newer one (through its watch or its own reads), while
// a Store that never saw the newer one cannot tell.
func TestReplayedRecordIsRollback(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	writer, watcher := e.open(t), e.open(t)
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v1"}))
	old := raw(t, c, e.prefix+"/records/server")
	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v2"}))
	got, err := watcher.Get(ctx, "server")
	require.NoError(t, err)
	require.Equal(t, "v2", got.AccessToken)

	put(t, c, e.prefix+"/records/server", old)
	for name, s := range map[string]*etcdstore.Store{"writer": writer, "watcher": watcher} {
		waitFor(t, name+" sees the rollback", func() bool {
			_, err := s.Get(ctx, "server")
			return err != nil
		})
		_, err := s.Get(ctx, "server")
		assert.ErrorIs(t, err, sessionstore.ErrRollback, name)
		_, err = s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
			t.Error("Update runs fn over a rolled-back record")
			return cur, nil
		})
		assert.ErrorIs(t, err, sessionstore.ErrRollback, name+": Update")
	}
	fresh, err := e.open(t).Get(ctx, "server")
	require.NoError(t, err, "a Store that never saw v2")
	assert.Equal(t, "v1", fresh.AccessToken)

	require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v3"}), "Set replaces a rolled-back record")
	waitFor(t, "the watcher sees v3", func() bool {
		got, err := watcher.Get(ctx, "server")
		return err == nil && got.AccessToken == "v3"
	})
}

// Set over a record sealed to a key this Store does not hold returns
// sessionstore.ErrWrongKey and changes nothing; over a corrupt record it
// replaces it, and Update refuses to run fn over one.
func TestSetOverForeignAndCorruptRecords(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	foreign := openOn(t, c, e.prefix, etcdstore.WithKeyFile(newKeyFile(t)))
	require.NoError(t, foreign.Set(ctx, "server", sampleAuth()))
	before := raw(t, c, e.prefix+"/records/server")

	s := e.open(t)
	err := s.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "mine"})
	assert.ErrorIs(t, err, sessionstore.ErrWrongKey)
	assert.Equal(t, before, raw(t, c, e.prefix+"/records/server"), "nothing changed")

	put(t, c, e.prefix+"/records/client", []byte("age-encryption.org/v1\ngarbage"))
	_, err = s.Update(ctx, "client", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		t.Error("fn runs over a corrupt record")
		return cur, nil
	})
	assert.ErrorIs(t, err, sessionstore.ErrTampered)
	require.NoError(t, s.Set(ctx, "client", sessionstore.AuthObject{AccessToken: "replaced"}))
	got, err := s.Get(ctx, "client")
	require.NoError(t, err)
	assert.Equal(t, "replaced", got.AccessToken)
}

// Once the watch vouches for it, a cached value costs no read from etcd:
// a Get allocates nothing (a round trip to etcd would).
func TestCacheHitReadsNothing(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	s := e.open(t)
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	waitFor(t, "the watch to vouch", s.Watching)
	_, err := s.Get(ctx, "server")
	require.NoError(t, err)
	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	require.True(t, sampleAuth().Equal(got), "got %v", got)
	// A progress answer may be late on a busy machine: measure again then.
	waitFor(t, "cache hits that allocate nothing", func() bool {
		allocs := testing.AllocsPerRun(100, func() { s.Get(ctx, "server") })
		return allocs == 0 && s.Watching()
	})
}

// Each open Store publishes a heartbeat with its host, pid and key
// fingerprints (primary first), which goes away when it closes.
func TestHeartbeats(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	s := e.open(t)
	hosts, err := etcdstore.Hosts(ctx, c, e.prefix)
	require.NoError(t, err)
	require.Len(t, hosts, 1)
	name, _ := os.Hostname()
	assert.Equal(t, name, hosts[0].Host)
	assert.Equal(t, os.Getpid(), hosts[0].PID)
	assert.Equal(t, s.Keyring().Fingerprints(), hosts[0].Keys)
	assert.Equal(t, s.Keyring().Fingerprint(0), hosts[0].Primary())
	for _, k := range hosts[0].Keys {
		assert.True(t, strings.HasPrefix(k, "sha256:"), "a fingerprint, not a key: %s", k)
	}

	require.NoError(t, s.Close())
	hosts, err = etcdstore.Hosts(ctx, c, e.prefix)
	require.NoError(t, err)
	assert.Empty(t, hosts, "Close revokes the lease and the heartbeat with it")
}

// A Store whose lease ended is listed again on its new lease, whichever of
// a write and the heartbeat started that lease.
func TestHeartbeatFollowsNewLease(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	s := e.open(t)
	old := s.LeaseID()
	_, err := c.Revoke(ctx, clientv3.LeaseID(old))
	require.NoError(t, err)
	require.NoError(t, s.Set(ctx, "server", sampleAuth()), "a write starts a new lease")
	waitFor(t, "the heartbeat on the new lease", func() bool {
		hosts, err := etcdstore.Hosts(ctx, c, e.prefix)
		require.NoError(t, err)
		return len(hosts) == 1 && hosts[0].ID == fmt.Sprintf("%016x", s.LeaseID()) && s.LeaseID() != old
	})
}
