package keys

import (
	"log/slog"

	"filippo.io/age"
	"filippo.io/age/plugin"

	"github.com/sessionstore/sessionstore/crypto"
)

// The key options every backend offers set its options' Config through
// these; the backend's exported With* options wrap them.
//
// A key file is read with its ".recipients" file and reread before every
// write (and when a record does not open), so that a Store follows a
// staged rotation. A passphrase is asked for at most once per Open, only
// if the key file is protected, and kept to reload the key file. A key
// file sealed to age recipients is opened with an identity file (default
// $SESSIONSTORE_KEY_IDENTITY), usually a plugin's stub: the plugin runs
// once per process for given key file bytes, never for a record.

func File(path string) func(*Config)             { return func(c *Config) { c.File = path } }
func Ring(k *crypto.Keyring) func(*Config)       { return func(c *Config) { c.Ring = k } }
func Logger(l *slog.Logger) func(*Config)        { return func(c *Config) { c.Log = l } }
func IdentityFile(path string) func(*Config)     { return func(c *Config) { c.Identity.File = path } }
func PluginUI(ui *plugin.ClientUI) func(*Config) { return func(c *Config) { c.Identity.UI = ui } }
func Passphrase(ask func() (string, error)) func(*Config) {
	return func(c *Config) { c.AskPass = ask }
}
func Recipients(r ...age.Recipient) func(*Config) {
	return func(c *Config) { c.Extra = append(c.Extra, r...) }
}
