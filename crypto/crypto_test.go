package crypto_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

func TestKeyFileRoundTripAndAgeKeygenFormat(t *testing.T) {
	for _, pq := range []bool{false, true} {
		k, err := crypto.GenerateKeyring(pq)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "key")
		require.NoError(t, crypto.CreateKeyFile(path, k))
		if runtime.GOOS != "windows" {
			fi, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		lines := strings.Split(string(data), "\n")
		assert.True(t, strings.HasPrefix(lines[0], "# created: "))
		assert.Equal(t, "# public key: "+k.PublicKey(0), lines[1])
		// age's own parser reads it.
		ids, err := age.ParseIdentities(bytes.NewReader(data))
		require.NoError(t, err)
		require.Len(t, ids, 1)

		loaded, err := crypto.LoadKeyring(path)
		require.NoError(t, err)
		assert.Equal(t, k.PublicKey(0), loaded.PublicKey(0))

		assert.ErrorIs(t, crypto.CreateKeyFile(path, k), os.ErrExist, "refuses to overwrite")
	}
}

func TestLoadKeyringInsecurePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX modes")
	}
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "key")
	require.NoError(t, crypto.CreateKeyFile(path, k))
	require.NoError(t, os.Chmod(path, 0o640))
	_, err = crypto.LoadKeyring(path)
	assert.ErrorIs(t, err, sessionstore.ErrInsecurePermissions)
	assert.Contains(t, err.Error(), path)
	assert.NotContains(t, err.Error(), "AGE-SECRET-KEY")

	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Chmod(path, 0o600))
	require.NoError(t, os.Symlink(path, link))
	_, err = crypto.LoadKeyring(link)
	assert.Error(t, err, "a symlinked key file is not followed")
}

func TestParseKeyringErrorsNeverShowKeyMaterial(t *testing.T) {
	_, err := crypto.ParseKeyring(strings.NewReader("AGE-SECRET-KEY-1NOTAREALKEYBUTSECRETLOOKING\n"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "SECRETLOOKING")
	_, err = crypto.ParseKeyring(strings.NewReader("# only a comment\n"))
	assert.Error(t, err)
}

func TestRecipientsKindMismatch(t *testing.T) {
	classic, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	pq, err := crypto.GenerateKeyring(true)
	require.NoError(t, err)
	_, err = pq.WithRecipients(classic.Recipient())
	assert.ErrorContains(t, err, "cannot mix")
	_, err = classic.WithRecipients(pq.Recipient())
	assert.ErrorContains(t, err, "cannot mix")

	// Through the file next to the key file.
	path := filepath.Join(t.TempDir(), "key")
	require.NoError(t, crypto.CreateKeyFile(path, pq))
	require.NoError(t, os.WriteFile(path+crypto.RecipientsSuffix, []byte("# break-glass\n"+classic.PublicKey(0)+"\n"), 0o600))
	_, err = crypto.LoadKeyring(path)
	assert.ErrorContains(t, err, "cannot mix")
	assert.ErrorContains(t, err, path+crypto.RecipientsSuffix)
}

func TestExtraRecipientsCanDecrypt(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	breakGlass, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "key")
	require.NoError(t, crypto.CreateKeyFile(path, k))
	require.NoError(t, os.WriteFile(path+crypto.RecipientsSuffix, []byte("# break-glass key\n\n"+breakGlass.PublicKey(0)+"\n"), 0o600))
	loaded, err := crypto.LoadKeyring(path)
	require.NoError(t, err)
	require.Len(t, loaded.Recipients(), 2, "the primary and the break-glass key")
	ct, err := envelope.Seal(loaded, testRecord())
	require.NoError(t, err)
	r, err := age.Decrypt(bytes.NewReader(ct), breakGlass.Primary())
	require.NoError(t, err, "the break-glass key decrypts the record")
	var env map[string]any
	require.NoError(t, json.NewDecoder(r).Decode(&env))
	assert.Equal(t, "server", env["auth_type"])
}

// No fmt verb, slog handler or JSON encoding of a Keyring, alone or
// nested, shows a secret key.
func TestKeyringNeverPrintsSecrets(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	old, err := crypto.GenerateIdentity(false)
	require.NoError(t, err)
	k, err = crypto.NewKeyring(k.Primary(), old)
	require.NoError(t, err)
	type holder struct{ Ring *crypto.Keyring }
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&out, verb+"\n", k)
		fmt.Fprintf(&out, verb+"\n", holder{k})
		fmt.Fprintf(&out, verb+"\n", []*crypto.Keyring{k})
	}
	for _, h := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
		slog.New(h).Info("keys", "ring", k, "nested", holder{k}, "list", []*crypto.Keyring{k})
	}
	data, err := json.Marshal(holder{k})
	require.NoError(t, err)
	out.Write(data)
	assert.NotContains(t, strings.ToUpper(out.String()), "AGE-SECRET-KEY", out.String())
	assert.Contains(t, out.String(), k.PublicKey(0), "public keys still show")
	assert.Contains(t, out.String(), k.PublicKey(1))
}

// A staged identity is added last, decrypt-only, survives the key file
// round trip as staged, and Promote makes it the primary with the old
// primary kept decrypt-only.
func TestStageAndPromote(t *testing.T) {
	old, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := envelope.Seal(old, testRecord())
	require.NoError(t, err)
	id, err := crypto.GenerateIdentity(false)
	require.NoError(t, err)
	staged, err := old.Stage(id)
	require.NoError(t, err)
	require.Equal(t, 2, staged.Len())
	assert.True(t, staged.Staged())
	assert.Equal(t, old.PublicKey(0), staged.PublicKey(0), "the primary stays")

	parsed, err := crypto.ParseKeyring(bytes.NewReader(staged.MarshalKeyFile(time.Now())))
	require.NoError(t, err)
	assert.True(t, parsed.Staged(), "the key file says the last key is staged")
	assert.Equal(t, staged.Fingerprints(), parsed.Fingerprints())
	_, err = parsed.Stage(id)
	require.Error(t, err, "the same identity twice")

	promoted, err := parsed.Promote()
	require.NoError(t, err)
	assert.False(t, promoted.Staged())
	assert.Equal(t, []string{staged.Fingerprint(1), staged.Fingerprint(0)}, promoted.Fingerprints())
	_, idx, err := envelope.Open(promoted, ct, "", "server")
	require.NoError(t, err)
	assert.Equal(t, 1, idx, "the old primary opens its records, decrypt-only")
	assert.False(t, promoted.PrimaryOnly().Staged())
}

func testRecord() *envelope.Record {
	return &envelope.Record{AuthType: "server", Seq: 1, Written: time.Now(), Auth: json.RawMessage(`{"access_token":"at"}`)}
}
