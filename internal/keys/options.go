package keys

import (
	"log/slog"

	"filippo.io/age"
	"filippo.io/age/plugin"

	"github.com/sessionstore/sessionstore/crypto"
)

// The setters below are what the fleet backends' key options do to their
// Config. A Store rereads its key files before every write and when a
// record does not open; a passphrase is asked once per New; a sealed key
// file's plugin runs once per process for given key file bytes.

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
