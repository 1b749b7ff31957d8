package etcdstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/plugin"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/keys"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// A Store keeps sealed sessions under one etcd prefix, one key per auth
// type. It implements sessionstore.Store and is safe for concurrent use by
// goroutines and by processes on any number of hosts.
type Store struct {
	*protocol.Store
	b *backend
}

var _ sessionstore.Store = (*Store)(nil)

// Defaults of the options.
const (
	DefaultLockTTL      = 15 * time.Second
	DefaultMaxStaleness = 2 * time.Second
)

// An Option configures Open.
type Option func(*options)

type options struct {
	keys         keys.Config
	lockTTL      time.Duration
	maxStaleness time.Duration
	hooks        testHooks
}

// testHooks run in the watch goroutine (see export_test.go).
type testHooks struct {
	beforeFreshRead, beforeWatch, onResponse func()
}

func keyOption(set func(*keys.Config)) Option { return func(o *options) { set(&o.keys) } }

// WithKeyFile reads the keys from the age identity file at path and its
// ".recipients" file, reread before every write to follow a rotation.
func WithKeyFile(path string) Option { return keyOption(keys.File(path)) }

// WithKeyring uses fixed keys: such a Store cannot follow a rotation.
func WithKeyring(k *crypto.Keyring) Option { return keyOption(keys.Ring(k)) }

// WithRecipients seals every record to r as well.
func WithRecipients(r ...age.Recipient) Option { return keyOption(keys.Recipients(r...)) }

// WithPassphrase gives the passphrase of a passphrase-protected key file:
// ask is called at most once per Open, and only if the file is protected.
func WithPassphrase(ask func() (string, error)) Option { return keyOption(keys.Passphrase(ask)) }

// WithKeyIdentity opens a key file sealed to age recipients with the age
// identity file at path (default $SESSIONSTORE_KEY_IDENTITY).
func WithKeyIdentity(path string) Option { return keyOption(keys.IdentityFile(path)) }

// WithPluginUI sets how an age plugin's messages and prompts reach the
// user (default crypto.DefaultPluginUI).
func WithPluginUI(ui *plugin.ClientUI) Option { return keyOption(keys.PluginUI(ui)) }

// WithLogger logs the Store's background events (watch restarts, new
// leases, key reloads) to l; the default discards them.
func WithLogger(l *slog.Logger) Option { return keyOption(keys.Logger(l)) }

// WithLockTTL sets the TTL of the Store's lease, which holds its record
// locks and its heartbeat (default 15 s, rounded up to whole seconds): how
// long a host that dies holding a lock blocks that record's writers.
func WithLockTTL(d time.Duration) Option { return func(o *options) { o.lockTTL = d } }

// WithMaxStaleness bounds how long a cached value is served without
// hearing from etcd (default 2 s); past it, Get reads from etcd. A timer
// ends the serving a tenth of the bound (at most 50 ms) early: a process
// starved so badly that the timer fires later than that could serve a
// value that much past the bound.
func WithMaxStaleness(d time.Duration) Option { return func(o *options) { o.maxStaleness = d } }

// Open opens the store under prefix (for example "/sessionstore/prod") on
// client, which the caller owns and closes after the Store. It reads no
// record. Without WithKeyFile or WithKeyring it uses the key file named by
// $SESSIONSTORE_KEY_FILE, else $CREDENTIALS_DIRECTORY/sessionstore.key.
func Open(ctx context.Context, client *clientv3.Client, prefix string, opts ...Option) (*Store, error) {
	o := options{lockTTL: DefaultLockTTL, maxStaleness: DefaultMaxStaleness}
	for _, opt := range opts {
		opt(&o)
	}
	prefix, err := cleanPrefix("open", client, prefix)
	if err != nil {
		return nil, err
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
	b := newBackend(client, prefix, o.lockTTL, o.keys.Log)
	b.hooks = o.hooks
	ps, err := protocol.New(ctx, protocol.Config{Pkg: "etcdstore", Namespace: prefix, Backend: b, Keys: k,
		Log: o.keys.Log, Now: time.Now, MaxStaleness: o.maxStaleness})
	if err != nil {
		b.Close()
		return nil, err
	}
	return &Store{Store: ps, b: b}, nil
}

// cleanPrefix checks the arguments every entry point takes and returns the
// prefix without its trailing "/".
func cleanPrefix(op string, client *clientv3.Client, prefix string) (string, error) {
	p := strings.TrimRight(prefix, "/")
	switch {
	case client == nil:
		return "", fmt.Errorf("etcdstore: %s %q: no etcd client", op, prefix)
	case p == "":
		return "", fmt.Errorf("etcdstore: %s: the prefix is empty: give the service its own, such as /sessionstore/prod", op)
	}
	return p, nil
}
