package etcdstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/keys"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// A Store keeps sealed sessions under one etcd prefix, one key per auth
// type. It implements sessionstore.Store (Get, Set, Update, Delete, List,
// Close). It is safe for concurrent use by goroutines and, through etcd
// locks and fenced writes, by processes on any number of hosts.
type Store struct {
	*protocol.Store
	prefix string
	b      *backend
}

var _ sessionstore.Store = (*Store)(nil)

// Open opens the store under prefix (for example "/sessionstore/prod") on
// client, which the caller owns and closes after the Store. Open starts
// the Store's lease (its locks and heartbeat) and its watch on
// <prefix>/records/; it reads no record. Without WithKeyFile or
// WithKeyring it uses the key file named by $SESSIONSTORE_KEY_FILE, else
// $CREDENTIALS_DIRECTORY/sessionstore.key.
func Open(ctx context.Context, client *clientv3.Client, prefix string, opts ...Option) (*Store, error) {
	o := options{now: time.Now, lockTTL: DefaultLockTTL, maxStaleness: DefaultMaxStaleness}
	for _, opt := range opts {
		opt(&o)
	}
	if client == nil {
		return nil, fmt.Errorf("etcdstore: open %q: no etcd client", prefix)
	}
	prefix, err := cleanPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: open: the prefix is empty: give the service its own, such as /sessionstore/prod")
	}
	if o.lockTTL <= 0 || o.maxStaleness <= 0 {
		return nil, fmt.Errorf("etcdstore: open %s: lock TTL and maximum staleness must be positive", prefix)
	}
	if o.keys.Log == nil {
		o.keys.Log = slog.New(slog.DiscardHandler)
	}
	o.keys.Pkg = "etcdstore"
	k, err := keys.New(o.keys)
	if err != nil {
		return nil, err
	}
	b := &backend{client: client, prefix: prefix, ttl: int((o.lockTTL + time.Second - 1) / time.Second),
		log: o.keys.Log, hooks: o.hooks}
	b.bg, b.stop = context.WithCancel(context.Background())
	ps, err := protocol.New(ctx, protocol.Config{Pkg: "etcdstore", Namespace: prefix, Backend: b, Keys: k,
		Log: o.keys.Log, Now: o.now, MaxStaleness: o.maxStaleness})
	if err != nil {
		b.Close()
		return nil, err
	}
	return &Store{Store: ps, prefix: prefix, b: b}, nil
}

// Prefix returns the store's prefix, without a trailing "/".
func (s *Store) Prefix() string { return s.prefix }

// Watching reports whether the Store currently serves values from its
// cache: its watch is up and etcd answered within WithMaxStaleness.
func (s *Store) Watching() bool { return s.Store.Watching() }

func cleanPrefix(prefix string) (string, error) {
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		return "", fmt.Errorf("etcdstore: the prefix is empty")
	}
	return prefix, nil
}
