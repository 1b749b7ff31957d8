package etcdstore

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionstore/sessionstore/internal/keys"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
)

// A Store keeps sealed sessions under one etcd prefix, one key per auth
// type. It implements sessionstore.Store. It is safe for concurrent use by
// goroutines and, through etcd locks and fenced writes, by processes on
// any number of hosts.
type Store struct {
	client       *clientv3.Client
	prefix       string // no trailing "/"; the namespace bound into records
	log          *slog.Logger
	now          func() time.Time
	ttl          int // lease TTL, seconds
	maxStaleness time.Duration
	epoch        time.Time // the origin of monotonic deadlines (see watchState)
	hooks        testHooks

	keys *keys.Keys

	bg     context.Context // ends at Close: the background goroutines and the lease
	stop   context.CancelFunc
	wg     sync.WaitGroup // the background goroutines
	closed atomic.Bool

	names nameLocks // the in-process lock of each record

	sessMu sync.Mutex // guards sess
	sess   *session

	cache cache // by auth type

	// pending holds, per auth type, the write this Store is committing
	// (a *pendingWrite), so that its own watch event is recognised by its
	// bytes and not decrypted again.
	pending sync.Map
	watch   watchState

	// Counters for tests and debugging: records read from etcd, records
	// decrypted, lease sessions started.
	reads, opens, sessions atomic.Uint64
	derivedUnderLock       atomic.Uint64 // key derivations while this Store held a record lock
	locksHeld              atomic.Int32  // record locks this Store holds now
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
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		return nil, fmt.Errorf("etcdstore: open: the prefix is empty: give the service its own, such as /sessionstore/prod")
	}
	if o.lockTTL <= 0 || o.maxStaleness <= 0 {
		return nil, fmt.Errorf("etcdstore: open %s: lock TTL and maximum staleness must be positive", prefix)
	}
	if o.keyring == nil && o.keyFile == "" {
		var err error
		if o.keyFile, err = crypto.DefaultKeyFile(); err != nil {
			return nil, fmt.Errorf("etcdstore: %w", err)
		}
	}
	s := &Store{
		client:       client,
		prefix:       prefix,
		log:          o.logger,
		now:          o.now,
		ttl:          int((o.lockTTL + time.Second - 1) / time.Second),
		maxStaleness: o.maxStaleness,
		epoch:        time.Now(),
		hooks:        o.hooks,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	keyFile := o.keyFile
	if abs, err := filepath.Abs(keyFile); err == nil && keyFile != "" {
		keyFile = abs
	}
	var err error
	s.keys, err = keys.New(keys.Config{Pkg: "etcdstore", File: keyFile, Ring: o.keyring, Extra: o.extra,
		AskPass: o.askPass, Identity: o.identity, Log: s.log, Derive: s.countDerivation})
	if err != nil {
		return nil, err
	}
	s.bg, s.stop = context.WithCancel(context.Background())
	if _, err := s.session(ctx); err != nil {
		s.stop()
		return nil, err
	}
	s.wg.Add(2)
	go s.watchLoop()
	go s.heartbeatLoop()
	return s, nil
}

// Prefix returns the store's prefix, without a trailing "/".
func (s *Store) Prefix() string { return s.prefix }

// Keyring returns the keyring the Store currently uses.
func (s *Store) Keyring() *crypto.Keyring { return s.keys.Ring() }

// The key layout under the prefix.
func recordsPrefix(prefix string) string { return prefix + "/records/" }
func locksPrefix(prefix string) string   { return prefix + "/locks/" }
func hostsPrefix(prefix string) string   { return prefix + "/hosts/" }

func (s *Store) recordKey(stem string) string { return recordsPrefix(s.prefix) + stem }
func (s *Store) lockKey(stem string) string   { return locksPrefix(s.prefix) + stem }

// List returns the auth types stored under the prefix, sorted. Keys that
// are not records of this store are skipped.
func (s *Store) List(ctx context.Context) ([]string, error) {
	if err := s.checkOpen("list"); err != nil {
		return nil, err
	}
	return listNames(ctx, s.client, s.prefix)
}

// listNames returns the auth types of prefix's records, sorted.
func listNames(ctx context.Context, client *clientv3.Client, prefix string) ([]string, error) {
	pfx := recordsPrefix(prefix)
	resp, err := client.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list %s: %w", pfx, err)
	}
	names := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if name, ok := nameOf(strings.TrimPrefix(string(kv.Key), pfx)); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("etcdstore: %s %s: %w", op, s.prefix, sessionstore.ErrClosed)
	}
	return nil
}

// Close releases the Store: it stops its watch and heartbeat and revokes
// its lease (removing its heartbeat and any lock it holds), waiting at most
// a few seconds for etcd. It does not close the client. Calls after Close
// return sessionstore.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.setDeadline(0) // no cached value is served from now on
	s.stop()
	s.wg.Wait()
	s.cache.Reset()
	s.sessMu.Lock()
	sess := s.sess
	s.sess = nil
	s.sessMu.Unlock()
	if sess != nil {
		sess.end(s.client)
	}
	return nil
}
