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
)

func testRecord() *crypto.Record {
	return &crypto.Record{
		AuthType: "server",
		Seq:      42,
		Written:  time.Date(2026, 11, 27, 1, 2, 3, 4, time.UTC),
		Auth:     json.RawMessage(`{"access_token":"at-<&>-secret","refresh_token":"rt"}`),
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	for _, pq := range []bool{false, true} {
		k, err := crypto.GenerateKeyring(pq)
		require.NoError(t, err)
		ct, err := k.Seal(testRecord())
		require.NoError(t, err)
		assert.True(t, bytes.HasPrefix(ct, []byte("age-encryption.org/v1\n")), "a record is an age file")
		assert.NotContains(t, string(ct), "secret", "no plaintext in the sealed record")

		rec, idx, err := k.Open(ct, "server")
		require.NoError(t, err)
		assert.Equal(t, 0, idx)
		assert.Equal(t, 1, rec.Version, "a record without a namespace stays version 1")
		assert.Equal(t, uint64(42), rec.Seq)
		assert.True(t, rec.Written.Equal(testRecord().Written))
		assert.JSONEq(t, string(testRecord().Auth), string(rec.Auth))
	}
}

// A record sealed in a namespace (an etcd prefix) is version 2 and opens
// only in that namespace, under its auth type; a file record (no
// namespace) does not open in one.
func TestNamespaceBinding(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	rec := testRecord()
	rec.Namespace = "/sessionstore/prod"
	ct, err := k.Seal(rec)
	require.NoError(t, err)
	got, _, err := k.OpenIn(ct, "/sessionstore/prod", "server")
	require.NoError(t, err)
	assert.Equal(t, 2, got.Version)
	assert.Equal(t, "/sessionstore/prod", got.Namespace)
	for _, c := range []struct{ ns, name string }{
		{"/sessionstore/staging", "server"},
		{"/sessionstore/prod/x", "server"},
		{"", "server"},
		{"/sessionstore/prod", "client"},
	} {
		_, _, err := k.OpenIn(ct, c.ns, c.name)
		assert.ErrorIs(t, err, sessionstore.ErrTampered, "namespace %q, name %q", c.ns, c.name)
	}
	file, err := k.Seal(testRecord())
	require.NoError(t, err)
	_, _, err = k.OpenIn(file, "/sessionstore/prod", "server")
	assert.ErrorIs(t, err, sessionstore.ErrTampered, "a file record copied into a prefix")
}

func TestSealCompactsAuthJSON(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	r := testRecord()
	r.Auth = json.RawMessage("{ \"access_token\" : \"a\" ,\n \"x\": \"<>\" }")
	ct, err := k.Seal(r)
	require.NoError(t, err)
	_, _, err = k.Open(ct, "server")
	assert.NoError(t, err, "whitespace and HTML characters must not break the MAC")
}

func TestOpenWrongAuthTypeIsTampered(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := k.Seal(testRecord())
	require.NoError(t, err)
	_, _, err = k.Open(ct, "client")
	assert.ErrorIs(t, err, sessionstore.ErrTampered)
	assert.Contains(t, err.Error(), `"server"`)
}

// A record made by someone who holds only the public recipient decrypts
// fine with age, but its MAC cannot be right.
func TestOpenForgedWithPublicRecipientIsTampered(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	pt := `{"v":1,"auth_type":"server","seq":99,"written":"2026-11-27T00:00:00Z","auth":{"access_token":"evil"},"mac":"AAAA"}`
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, k.Recipient())
	require.NoError(t, err)
	_, err = w.Write([]byte(pt))
	require.NoError(t, err)
	require.NoError(t, w.Close())

	_, _, err = k.Open(buf.Bytes(), "server")
	assert.ErrorIs(t, err, sessionstore.ErrTampered)
	assert.NotContains(t, err.Error(), "evil")

	// Same with a MAC under a key derived from another identity.
	other, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	forged, err := other.WithRecipients(k.Recipient())
	require.NoError(t, err)
	ct, err := forged.Seal(testRecord())
	require.NoError(t, err)
	_, _, err = k.Open(ct, "server")
	assert.ErrorIs(t, err, sessionstore.ErrTampered)
}

func TestOpenWrongKey(t *testing.T) {
	k1, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	k2, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := k1.Seal(testRecord())
	require.NoError(t, err)
	_, _, err = k2.Open(ct, "server")
	assert.ErrorIs(t, err, sessionstore.ErrWrongKey)
	assert.NotErrorIs(t, err, sessionstore.ErrTampered)
}

func TestOpenCorruptIsTampered(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := k.Seal(testRecord())
	require.NoError(t, err)
	cases := map[string][]byte{
		"empty":         nil,
		"garbage":       []byte("not an age file at all"),
		"truncated":     ct[:len(ct)/2],
		"last byte cut": ct[:len(ct)-1],
		"payload flip":  flip(ct, len(ct)-5),
		"header flip":   flip(ct, 30),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := k.Open(data, "server")
			require.Error(t, err)
			// A flipped header byte may garble the stanza so that no
			// identity matches; everything else is corruption.
			if name == "header flip" {
				assert.True(t, isEither(err), "got %v", err)
				return
			}
			assert.ErrorIs(t, err, sessionstore.ErrTampered)
		})
	}
}

func isEither(err error) bool {
	return err != nil && (strings.Contains(err.Error(), sessionstore.ErrTampered.Error()) || strings.Contains(err.Error(), sessionstore.ErrWrongKey.Error()))
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestOldIdentityStillVerifies(t *testing.T) {
	old, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := old.Seal(testRecord())
	require.NoError(t, err)
	id, err := crypto.GenerateIdentity(true)
	require.NoError(t, err)
	rotated, err := old.Rotate(id)
	require.NoError(t, err)
	require.Equal(t, 2, rotated.Len())
	assert.True(t, rotated.PostQuantum())

	_, idx, err := rotated.Open(ct, "server")
	require.NoError(t, err, "a record sealed for a decrypt-only identity still opens and verifies")
	assert.Equal(t, 1, idx)

	_, _, err = rotated.PrimaryOnly().Open(ct, "server")
	assert.ErrorIs(t, err, sessionstore.ErrWrongKey)
}

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

// age -d -i KEY reads a record: the age library with the key file's
// identities decrypts it and finds the JSON record.
func TestRecordReadableByAgeWithKeyFile(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := k.Seal(testRecord())
	require.NoError(t, err)
	ids, err := age.ParseIdentities(bytes.NewReader(k.MarshalKeyFile(time.Now())))
	require.NoError(t, err)
	r, err := age.Decrypt(bytes.NewReader(ct), ids...)
	require.NoError(t, err)
	var env map[string]any
	require.NoError(t, json.NewDecoder(r).Decode(&env))
	assert.Equal(t, "server", env["auth_type"])
	assert.EqualValues(t, 1, env["v"])
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
	require.Len(t, loaded.ExtraRecipients(), 1)
	ct, err := loaded.Seal(testRecord())
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
	ct, err := old.Seal(testRecord())
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
	_, idx, err := promoted.Open(ct, "server")
	require.NoError(t, err)
	assert.Equal(t, 1, idx, "the old primary opens its records, decrypt-only")
	assert.False(t, promoted.PrimaryOnly().Staged())
}

// The auth object stands in the record exactly as compacted: '<', '>',
// '&' and U+2028 are not escaped (as json.Marshal would), or its MAC would
// not verify. It opens to those bytes.
func TestSealKeepsAuthBytesVerbatim(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	const compactAuth = "{\"access_token\":\"<>&\u2028\u2029\",\"n\":[1,2.5e3,null],\"esc\":\"\\u003c\\\"\"}"
	for _, auth := range []string{compactAuth, "{ \"access_token\" : \"<>&\u2028\u2029\",\n\t\"n\": [1, 2.5e3, null], \"esc\": \"\\u003c\\\"\" }\n"} {
		for _, ns := range []string{"", "/sessionstore/prod"} {
			rec := testRecord()
			rec.Namespace, rec.Auth = ns, json.RawMessage(auth)
			ct, err := k.Seal(rec)
			require.NoError(t, err)
			got, _, err := k.OpenIn(ct, ns, "server")
			require.NoError(t, err)
			assert.Equal(t, compactAuth, string(got.Auth))

			r, err := age.Decrypt(bytes.NewReader(ct), k.Primary())
			require.NoError(t, err)
			var pt bytes.Buffer
			_, err = pt.ReadFrom(r)
			require.NoError(t, err)
			assert.Contains(t, pt.String(), `,"auth":`+compactAuth+`,"mac":"`)
		}
	}
}

func TestSealRefusesInvalidAuthJSON(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	for _, auth := range []string{"", " ", `{"access_token":"secret-token"`, `{"access_token":"secret-token"} x`, `{"access_token":secret-token}`, "[1,]"} {
		rec := testRecord()
		rec.Auth = json.RawMessage(auth)
		_, err := k.Seal(rec)
		require.Error(t, err, "%q", auth)
		assert.Equal(t, "seal: auth object is not valid JSON", err.Error())
	}
	rec := testRecord()
	rec.Auth = nil
	_, err = k.Seal(rec)
	assert.Error(t, err)

	rec = testRecord()
	rec.Written = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = k.Seal(rec)
	assert.EqualError(t, err, "seal: the write time is outside the years 0 to 9999")
}
