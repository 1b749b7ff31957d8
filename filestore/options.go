package filestore

import (
	"log/slog"

	"filippo.io/age"
	"filippo.io/age/plugin"
	"github.com/fsnotify/fsnotify"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/fsutil"
	"github.com/sessionstore/sessionstore/internal/keys"
)

// An Option configures Open.
type Option func(*options)

type options struct {
	keys    keys.Config
	noWatch bool
	fault   fsutil.FaultFunc
	watcher func() (*fsnotify.Watcher, error)
}

// WithKeyFile reads the keys from an age identity file (and its
// ".recipients" file). The Store reloads them when they change, so it
// follows a rotation.
func WithKeyFile(path string) Option { return func(o *options) { o.keys.File = path } }

// WithKeyring uses fixed keys. Such a Store cannot follow a rotation:
// long-running processes should use WithKeyFile.
func WithKeyring(k *crypto.Keyring) Option { return func(o *options) { o.keys.Ring = k } }

// WithRecipients seals every record to r as well, beyond the primary and
// the key file's ".recipients".
func WithRecipients(r ...age.Recipient) Option {
	return func(o *options) { o.keys.Extra = append(o.keys.Extra, r...) }
}

// WithPassphrase gives the passphrase of a passphrase-protected key file
// ("age -p"). It is called at most once per Open, only if the key file is
// protected; the Store keeps the passphrase to reload the key file.
func WithPassphrase(ask func() (string, error)) Option {
	return func(o *options) { o.keys.AskPass = ask }
}

// WithKeyIdentity opens a key file sealed to age recipients ("rekey -init
// -seal-to") with the age identity file at path, usually a plugin's
// identity stub; the default is $SESSIONSTORE_KEY_IDENTITY. The plugin
// runs once per key-file change, never for a record.
func WithKeyIdentity(path string) Option { return func(o *options) { o.keys.Identity.File = path } }

// WithPluginUI sets how an age plugin's messages and prompts (a PIN, a
// touch) reach the user. The default, crypto.DefaultPluginUI, writes them
// to standard error and prompts only if standard error is a terminal.
func WithPluginUI(ui *plugin.ClientUI) Option { return func(o *options) { o.keys.Identity.UI = ui } }

// WithoutWatcher disables fsnotify: every Get validates its cached entry
// against the record file. This is the mode a Store falls back to by itself
// where a directory cannot be watched.
func WithoutWatcher() Option { return func(o *options) { o.noWatch = true } }

// WithLogger logs the Store's background events (watcher failures, key
// reloads) to l. The default discards them.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.keys.Log = l } }
