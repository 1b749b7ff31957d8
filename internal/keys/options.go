package keys

import (
	"log/slog"

	"filippo.io/age"
	"filippo.io/age/plugin"

	"github.com/sessionstore/sessionstore/crypto"
)

// The setters below are what the fleet backends' key options
// (WithKeyFile, WithKeyring, ...) do to their Config; their exported
// options wrap them.
//
// A key file is read with its ".recipients" file and reread before every
// write (and when a record does not open), so that a Store follows a
// staged rotation. A passphrase is asked for at most once per Open, only
// if the key file is protected, and kept to reload the key file. A key
// file sealed to age recipients is opened with an identity file (default
// $SESSIONSTORE_KEY_IDENTITY), usually a plugin's stub: the plugin runs
// once per process for given key file bytes, never for a record.

// File sets the key file.
func File(path string) func(*Config) { return func(c *Config) { c.File = path } }

// Ring sets fixed keys.
func Ring(k *crypto.Keyring) func(*Config) { return func(c *Config) { c.Ring = k } }

// Logger sets the Store's logger.
func Logger(l *slog.Logger) func(*Config) { return func(c *Config) { c.Log = l } }

// IdentityFile sets the identity file of a sealed key file.
func IdentityFile(path string) func(*Config) { return func(c *Config) { c.Identity.File = path } }

// PluginUI sets how age plugins talk to the user.
func PluginUI(ui *plugin.ClientUI) func(*Config) { return func(c *Config) { c.Identity.UI = ui } }

// Passphrase sets how a protected key file's passphrase is asked for.
func Passphrase(ask func() (string, error)) func(*Config) {
	return func(c *Config) { c.AskPass = ask }
}

// Recipients adds recipients every record is sealed to.
func Recipients(r ...age.Recipient) func(*Config) {
	return func(c *Config) { c.Extra = append(c.Extra, r...) }
}
