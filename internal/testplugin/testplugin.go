// Package testplugin builds and drives age-plugin-sstest, a real age
// plugin process for tests: its recipients and identities wrap an X25519
// key, it counts its runs, and it can be told to refuse.
package testplugin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	"filippo.io/age/plugin"
	"github.com/stretchr/testify/require"
)

// The plugin's environment: the file it logs its runs to, and, if set,
// the message it refuses with.
const (
	LogEnv    = "SSTEST_PLUGIN_LOG"
	RefuseEnv = "SSTEST_PLUGIN_REFUSE"
)

var buildDir string // set by Build

// Build builds the plugin, once per process, and returns its directory.
var Build = sync.OnceValues(func() (string, error) {
	var err error
	if buildDir, err = os.MkdirTemp("", "testplugin"); err != nil {
		return "", err
	}
	// go build -o DIR/ names the program as the OS wants it (.exe).
	cmd := exec.Command("go", "build", "-o", buildDir+string(filepath.Separator), "github.com/sessionstore/sessionstore/internal/testplugin/age-plugin-sstest")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building age-plugin-sstest: %v\n%s", err, out)
	}
	return buildDir, nil
})

// Cleanup removes the plugin built by Build (for TestMain).
func Cleanup() { os.RemoveAll(buildDir) } // "": nothing

// A Plugin is the test plugin on $PATH, with one key.
type Plugin struct {
	Recipient    string // age1sstest1…
	IdentityFile string // a file holding the identity stub AGE-PLUGIN-SSTEST-1…
	log          string // the file it logs its runs to
}

// Setup builds the plugin, puts it on $PATH and its log in $SSTEST_PLUGIN_LOG
// (t.Setenv: not for parallel tests), and makes a key for it.
func Setup(t *testing.T) *Plugin {
	t.Helper()
	dir, err := Build()
	require.NoError(t, err)
	tmp := t.TempDir()
	p := &Plugin{log: filepath.Join(tmp, "plugin.log"), IdentityFile: filepath.Join(tmp, "identity.txt")}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv(LogEnv, p.log)
	t.Setenv(RefuseEnv, "")
	r, err := NewKey(p.IdentityFile)
	require.NoError(t, err)
	p.Recipient = r
	return p
}

// NewKey makes a key for the plugin: it writes the identity stub
// (AGE-PLUGIN-SSTEST-1…) to identityFile and returns the recipient
// (age1sstest1…).
func NewKey(identityFile string) (recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	recipient = plugin.EncodeRecipient("sstest", []byte(id.Recipient().String()))
	stub := plugin.EncodeIdentity("sstest", []byte(id.String()))
	return recipient, os.WriteFile(identityFile, []byte("# recipient: "+recipient+"\n"+stub+"\n"), 0o600)
}

// Calls returns how many times the plugin ran, since Setup, to unwrap
// (open a file) and to wrap (seal one).
func (p *Plugin) Calls(t *testing.T) (unwrap, wrap int) {
	t.Helper()
	unwrap, wrap, err := Count(p.log)
	require.NoError(t, err)
	return unwrap, wrap
}

// Count returns how many runs of the plugin the log file records, to
// unwrap and to wrap.
func Count(log string) (unwrap, wrap int, err error) {
	b, err := os.ReadFile(log)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	// Each run logs its arguments: --age-plugin=identity-v1 or recipient-v1.
	return strings.Count(string(b), "identity-v1"), strings.Count(string(b), "recipient-v1"), err
}
