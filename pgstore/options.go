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

// WithKeyFile reads the keys from an age identity file (and its
// ".recipients" file). The Store rereads it before every write and when a
// record does not open, so it follows a staged rotation.
func WithKeyFile(path string) Option { return func(o *options) { o.keys.File = path } }

// WithMaxStaleness bounds how long a cached value is served without
// hearing from the server (default 2 s): the Store's listening connection
// asks the server for a notification of its own three times per period,
// which arrives after every change committed before it.
func WithMaxStaleness(d time.Duration) Option { return func(o *options) { o.maxStaleness = d } }

// WithKeyring uses fixed keys. Such a Store cannot follow a rotation:
// long-running processes should use WithKeyFile.
func WithKeyring(k *crypto.Keyring) Option { return func(o *options) { o.keys.Ring = k } }

// WithSchema puts the tables in schema name (default "sessionstore").
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithRecipients seals every record to r as well, beyond the primary and
// the key file's ".recipients".
func WithRecipients(r ...age.Recipient) Option {
	return func(o *options) { o.keys.Extra = append(o.keys.Extra, r...) }
}

// WithoutListen is for a pool behind a transaction-pooling proxy
// (PgBouncer), where LISTEN does not work: the Store keeps no listening
// connection, each Get reads the record's row (one round trip) and
// decrypts it only when its version changed, and a writer waiting for a
// record's lock polls for it.
func WithoutListen() Option { return func(o *options) { o.noListen = true } }

// WithKeyIdentity opens a key file sealed to age recipients (as "rekey
// -init -seal-to" makes) with the age identity file at path, usually an
// age plugin's identity stub (AGE-PLUGIN-NAME-1…); the default is
// $SESSIONSTORE_KEY_IDENTITY. The plugin (age-plugin-NAME on $PATH) runs
// once per process for a given key file, and again only when the key
// file changes: never for a record.
func WithKeyIdentity(path string) Option { return func(o *options) { o.keys.Identity.File = path } }

// WithPassphrase gives the passphrase of a passphrase-protected key file
// (an age-encrypted identity file, as "age -p" writes). It is called at
// most once per Open, and only if the key file is protected; the Store
// keeps the passphrase to reload the key file after a rotation.
func WithPassphrase(ask func() (string, error)) Option {
	return func(o *options) { o.keys.AskPass = ask }
}

// WithLogger logs the Store's background events (reconnections of its
// listening connection, lost leases, key reloads) to l. The default
// discards them. pgx logs through the pool's own tracer.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.keys.Log = l } }

// WithPluginUI sets how an age plugin's messages and prompts (a PIN, a
// touch) reach the user. The default, crypto.DefaultPluginUI, writes them
// to standard error and prompts only if standard error is a terminal.
func WithPluginUI(ui *plugin.ClientUI) Option { return func(o *options) { o.keys.Identity.UI = ui } }
