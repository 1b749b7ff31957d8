package pgstore

import (
	"log/slog"
	"time"

	"filippo.io/age"
	"filippo.io/age/plugin"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/keys"
)

// An Option configures Open and the functions that take a pool and a
// namespace.
type Option func(*options)

// Defaults of the options.
const (
	DefaultSchema       = "sessionstore"
	DefaultLockTTL      = 15 * time.Second
	DefaultMaxStaleness = 2 * time.Second
)

type options struct {
	lockTTL      time.Duration
	maxStaleness time.Duration
	schema       string
	noListen     bool
	now          func() time.Time
	keys         keys.Config
}

func keyOption(set func(*keys.Config)) Option { return func(o *options) { set(&o.keys) } }

func newOptions(opts []Option) options {
	o := options{lockTTL: DefaultLockTTL, maxStaleness: DefaultMaxStaleness, schema: DefaultSchema, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.keys.Log == nil {
		o.keys.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// WithLockTTL sets the lease of a record's lock (default 15 s, judged by
// the server's clock): a process that dies while holding a lock blocks
// that record's writers for at most about this long. The lease is renewed
// while Update's function runs; a holder that stalls past it loses the
// lock, and its write is refused with sessionstore.ErrLockLost. Heartbeats
// live as long.
func WithLockTTL(d time.Duration) Option { return func(o *options) { o.lockTTL = d } }

// WithMaxStaleness bounds how long a cached value is served without
// hearing from the server (default 2 s): the Store's listening connection
// asks the server for a notification of its own three times per period,
// which arrives after every change committed before it. A timer ends the
// serving a tenth of the bound (at most 50 ms) early: a process starved so
// badly that the timer fires later than that could serve a value that much
// past the bound.
func WithMaxStaleness(d time.Duration) Option { return func(o *options) { o.maxStaleness = d } }

// WithSchema puts the tables in schema name (default "sessionstore").
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithoutListen is for a pool behind a transaction-pooling proxy
// (PgBouncer), where LISTEN does not work: the Store keeps no listening
// connection, each Get reads the record's row (one round trip) and
// decrypts it only when its version changed, and a writer waiting for a
// record's lock polls for it.
func WithoutListen() Option { return func(o *options) { o.noListen = true } }

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

// WithLogger logs the Store's background events (reconnections of its
// listening connection, lost leases, key reloads) to l. The default
// discards them. pgx logs through the pool's own tracer.
func WithLogger(l *slog.Logger) Option { return keyOption(keys.Logger(l)) }
