package etcdstore_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
)

// callLog records the etcd RPCs of a client.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) methods() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func (l *callLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = nil
}

// loggedClient returns a client of the test's server whose unary RPCs
// (lease grants, puts, transactions, reads) are recorded in the log.
func (e env) loggedClient(t *testing.T) (*clientv3.Client, *callLog) {
	t.Helper()
	l := &callLog{}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{e.endpoint},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(
			func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				l.mu.Lock()
				l.calls = append(l.calls, method)
				l.mu.Unlock()
				return invoker(ctx, method, req, reply, cc, opts...)
			})},
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, l
}

// onlyReads fails unless every call is a read.
func onlyReads(t *testing.T, calls []string) {
	t.Helper()
	for _, m := range calls {
		assert.Equal(t, "/etcdserverpb.KV/Range", m, "ReadRecords only reads")
	}
}

// ReadRecords reads and opens every record without a Store: no lease, no
// heartbeat, no write; records that do not open are listed with Err.
func TestReadRecords(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	w := e.open(t)
	require.NoError(t, w.Set(ctx, "server", sampleAuth()))
	require.NoError(t, w.Set(ctx, "app:12345", sessionstore.AuthObject{AccessToken: "at-SECRET-app"}))
	require.NoError(t, e.open(t, etcdstore.WithKeyFile(newKeyFile(t))).Set(ctx, "foreign", sampleAuth()))
	put(t, c, e.prefix+"/records/swapped", raw(t, c, e.prefix+"/records/server"))
	put(t, c, e.prefix+"/records/corrupt", []byte("not an age file"))
	put(t, c, e.prefix+"/records/NotAStem", []byte("skipped, as List skips it"))
	ring, err := crypto.LoadKeyring(e.key)
	require.NoError(t, err)

	rc, calls := e.loggedClient(t)
	recs, err := etcdstore.ReadRecords(ctx, rc, e.prefix+"/", ring)
	require.NoError(t, err)
	onlyReads(t, calls.methods())
	var names []string
	for _, r := range recs {
		names = append(names, r.AuthType)
	}
	assert.Equal(t, []string{"app:12345", "corrupt", "foreign", "server", "swapped"}, names)
	byName := func(n string) etcdstore.Record { return recs[slices.Index(names, n)] }

	srv := byName("server")
	require.NoError(t, srv.Err)
	assert.True(t, sampleAuth().Equal(srv.Auth), "got %v", srv.Auth)
	assert.Equal(t, 0, srv.Key)
	assert.Equal(t, ring.PublicKey(0), srv.PublicKey)
	assert.Equal(t, e.prefix+"/records/server", srv.Location)
	assert.NotZero(t, srv.Seq)
	assert.False(t, srv.Written.IsZero())
	assert.Equal(t, sampleAuth().Expiry, srv.Expiry)
	assert.Equal(t, "at-SECRET-app", byName("app:12345").Auth.AccessToken)
	for n, want := range map[string]error{"foreign": sessionstore.ErrWrongKey, "swapped": sessionstore.ErrTampered, "corrupt": sessionstore.ErrTampered} {
		r := byName(n)
		assert.ErrorIs(t, r.Err, want, n)
		assert.Contains(t, r.Error, e.prefix+"/records/"+n, "%s: names the key", n)
		assert.Equal(t, -1, r.Key, n)
		assert.Zero(t, r.Auth, n)
		assert.NotContains(t, r.Error, "SECRET", n)
	}

	calls.reset()
	r, err := etcdstore.ReadRecord(ctx, rc, e.prefix, ring, "app:12345")
	require.NoError(t, err)
	assert.Equal(t, "at-SECRET-app", r.Auth.AccessToken)
	r, err = etcdstore.ReadRecord(ctx, rc, e.prefix, ring, "foreign")
	require.NoError(t, err, "a record that does not open is no error")
	assert.ErrorIs(t, r.Err, sessionstore.ErrWrongKey)
	_, err = etcdstore.ReadRecord(ctx, rc, e.prefix, ring, "nosuch")
	assert.ErrorIs(t, err, sessionstore.ErrNotFound)
	assert.Contains(t, err.Error(), e.prefix+"/records/nosuch")
	_, err = etcdstore.ReadRecord(ctx, rc, e.prefix, ring, "")
	assert.ErrorIs(t, err, sessionstore.ErrInvalidAuthType)
	onlyReads(t, calls.methods())

	// The writers' open Stores are the only hosts: the reads are none.
	hosts, err := etcdstore.Hosts(ctx, c, e.prefix)
	require.NoError(t, err)
	assert.Len(t, hosts, 2, "the two writers' Stores, and no reader")

	_, err = etcdstore.ReadRecords(ctx, rc, "/", ring)
	assert.ErrorContains(t, err, "prefix is empty")
}

// The log of a Store's Open shows what ReadRecords never does: a lease
// and a heartbeat.
func TestReadRecordsLogSeesAStore(t *testing.T) {
	e := newEnv(t)
	c, calls := e.loggedClient(t)
	openOn(t, c, e.prefix, etcdstore.WithKeyFile(e.key))
	joined := strings.Join(calls.methods(), " ")
	assert.Contains(t, joined, "/etcdserverpb.Lease/LeaseGrant")
	assert.Contains(t, joined, "/etcdserverpb.KV/Put")
}
