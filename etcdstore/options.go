package etcdstore

import (
	"log/slog"
	"time"

	"filippo.io/age"
	"filippo.io/age/plugin"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/keys"
)

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
	now          func() time.Time
	hooks        testHooks
}

// testHooks are seams for tests (see export_test.go): they run in the
// watch goroutine at the named points.
type testHooks struct {
	beforeFreshRead func()
	beforeWatch     func()
	onResponse      func()
}

// WithKeyFile reads the keys from an age identity file (and its
// ".recipients" file). The Store rereads it before every write and when a
// record does not open, so it follows a staged rotation.
func WithKeyFile(path string) Option { return func(o *options) { o.keys.File = path } }

// WithLockTTL sets the TTL of the lease that holds the Store's record locks
// and its heartbeat (default 15 s, rounded up to whole seconds as etcd
// counts them). A host that dies while holding a lock blocks that record's
// writers for at most about this long; a host that stalls longer than this
// inside Update loses the lock, and its write is refused with
// sessionstore.ErrLockLost.
func WithLockTTL(d time.Duration) Option { return func(o *options) { o.lockTTL = d } }

// WithKeyring uses fixed keys. Such a Store cannot follow a rotation:
// long-running processes should use WithKeyFile.
func WithKeyring(k *crypto.Keyring) Option { return func(o *options) { o.keys.Ring = k } }

// WithMaxStaleness bounds how long a cached value is served without
// hearing from etcd (default 2 s). The Store asks etcd for a progress
// notification three times per period (every 10 ms until a new watch's
// first answer); when none arrives in time, Get
// reads from etcd instead of the cache. A timer, not a clock read per Get,
// ends the serving of cached values, a tenth of the period (at most 50 ms)
// before the bound: a process starved so badly that the timer fires later
// than that could serve a value that much past the bound.
func WithMaxStaleness(d time.Duration) Option { return func(o *options) { o.maxStaleness = d } }

// WithRecipients seals every record to r as well, beyond the primary and
// the key file's ".recipients".
func WithRecipients(r ...age.Recipient) Option {
	return func(o *options) { o.keys.Extra = append(o.keys.Extra, r...) }
}

// WithLogger logs the Store's background events (watch restarts, lease
// renewals, key reloads) to l. The default discards them. The etcd client
// logs through its own logger, which its owner configures (see the package
// documentation).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.keys.Log = l } }

// WithPassphrase gives the passphrase of a passphrase-protected key file
// (an age-encrypted identity file, as "age -p" writes). It is called at
// most once per Open, and only if the key file is protected; the Store
// keeps the passphrase to reload the key file after a rotation.
func WithPassphrase(ask func() (string, error)) Option {
	return func(o *options) { o.keys.AskPass = ask }
}

// WithPluginUI sets how an age plugin's messages and prompts (a PIN, a
// touch) reach the user. The default, crypto.DefaultPluginUI, writes them
// to standard error and prompts only if standard error is a terminal.
func WithPluginUI(ui *plugin.ClientUI) Option { return func(o *options) { o.keys.Identity.UI = ui } }

// WithKeyIdentity opens a key file sealed to age recipients (as "rekey
// -init -seal-to" makes) with the age identity file at path, usually an
// age plugin's identity stub (AGE-PLUGIN-NAME-1…); the default is
// $SESSIONSTORE_KEY_IDENTITY. The plugin (age-plugin-NAME on $PATH) runs
// once per process for a given key file, and again only when the key
// file changes: never for a record.
func WithKeyIdentity(path string) Option { return func(o *options) { o.keys.Identity.File = path } }
