package envelope_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
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

func testRecord() *envelope.Record {
	return &envelope.Record{
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
		ct, err := envelope.Seal(k, testRecord())
		require.NoError(t, err)
		assert.True(t, bytes.HasPrefix(ct, []byte("age-encryption.org/v1\n")), "a record is an age file")
		assert.NotContains(t, string(ct), "secret", "no plaintext in the sealed record")

		rec, idx, err := envelope.Open(k, ct, "", "server")
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
	ct, err := envelope.Seal(k, rec)
	require.NoError(t, err)
	got, _, err := envelope.Open(k, ct, "/sessionstore/prod", "server")
	require.NoError(t, err)
	assert.Equal(t, 2, got.Version)
	assert.Equal(t, "/sessionstore/prod", got.Namespace)
	for _, c := range []struct{ ns, name string }{
		{"/sessionstore/staging", "server"},
		{"/sessionstore/prod/x", "server"},
		{"", "server"},
		{"/sessionstore/prod", "client"},
	} {
		_, _, err := envelope.Open(k, ct, c.ns, c.name)
		assert.ErrorIs(t, err, sessionstore.ErrTampered, "namespace %q, name %q", c.ns, c.name)
	}
	file, err := envelope.Seal(k, testRecord())
	require.NoError(t, err)
	_, _, err = envelope.Open(k, file, "/sessionstore/prod", "server")
	assert.ErrorIs(t, err, sessionstore.ErrTampered, "a file record copied into a prefix")
}

func TestSealCompactsAuthJSON(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	r := testRecord()
	r.Auth = json.RawMessage("{ \"access_token\" : \"a\" ,\n \"x\": \"<>\" }")
	ct, err := envelope.Seal(k, r)
	require.NoError(t, err)
	_, _, err = envelope.Open(k, ct, "", "server")
	assert.NoError(t, err, "whitespace and HTML characters must not break the MAC")
}

func TestOpenWrongAuthTypeIsTampered(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := envelope.Seal(k, testRecord())
	require.NoError(t, err)
	_, _, err = envelope.Open(k, ct, "", "client")
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

	_, _, err = envelope.Open(k, buf.Bytes(), "", "server")
	assert.ErrorIs(t, err, sessionstore.ErrTampered)
	assert.NotContains(t, err.Error(), "evil")

	// Same with a MAC under a key derived from another identity.
	other, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	forged, err := other.WithRecipients(k.Recipient())
	require.NoError(t, err)
	ct, err := envelope.Seal(forged, testRecord())
	require.NoError(t, err)
	_, _, err = envelope.Open(k, ct, "", "server")
	assert.ErrorIs(t, err, sessionstore.ErrTampered)
}

func TestOpenWrongKey(t *testing.T) {
	k1, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	k2, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := envelope.Seal(k1, testRecord())
	require.NoError(t, err)
	_, _, err = envelope.Open(k2, ct, "", "server")
	assert.ErrorIs(t, err, sessionstore.ErrWrongKey)
	assert.NotErrorIs(t, err, sessionstore.ErrTampered)
}

func TestOpenCorruptIsTampered(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := envelope.Seal(k, testRecord())
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
			_, _, err := envelope.Open(k, data, "", "server")
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
	ct, err := envelope.Seal(old, testRecord())
	require.NoError(t, err)
	id, err := crypto.GenerateIdentity(true)
	require.NoError(t, err)
	rotated, err := old.Rotate(id)
	require.NoError(t, err)
	require.Equal(t, 2, rotated.Len())
	assert.True(t, rotated.PostQuantum())

	_, idx, err := envelope.Open(rotated, ct, "", "server")
	require.NoError(t, err, "a record sealed for a decrypt-only identity still opens and verifies")
	assert.Equal(t, 1, idx)

	_, _, err = envelope.Open(rotated.PrimaryOnly(), ct, "", "server")
	assert.ErrorIs(t, err, sessionstore.ErrWrongKey)
}

// age -d -i KEY reads a record: the age library with the key file's
// identities decrypts it and finds the JSON record.
func TestRecordReadableByAgeWithKeyFile(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	ct, err := envelope.Seal(k, testRecord())
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
			ct, err := envelope.Seal(k, rec)
			require.NoError(t, err)
			got, _, err := envelope.Open(k, ct, ns, "server")
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
		_, err := envelope.Seal(k, rec)
		require.Error(t, err, "%q", auth)
		assert.Equal(t, "seal: auth object is not valid JSON", err.Error())
	}
	rec := testRecord()
	rec.Auth = nil
	_, err = envelope.Seal(k, rec)
	assert.Error(t, err)

	rec = testRecord()
	rec.Written = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = envelope.Seal(k, rec)
	assert.EqualError(t, err, "seal: the write time is outside the years 0 to 9999")
}

// FuzzOpenRecord: any bytes give an error or the genuine record, never a
// panic and never a forged value.
func FuzzOpenRecord(f *testing.F) {
	k := testKeyring(f, "test-x25519.key")
	genuine := testRecord()
	ct, err := envelope.Seal(k, genuine)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ct)
	f.Add(ct[:len(ct)/2])
	f.Add([]byte("age-encryption.org/v1\n-> X25519 AAAA\nAAAA\n--- AAAA\n"))
	f.Add([]byte{})
	golden, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", "v1-x25519.age"))
	f.Add(golden)
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, _, err := envelope.Open(k, data, "", "server")
		if err != nil {
			if rec != nil {
				t.Fatal("a record came with an error")
			}
			return
		}
		if rec.AuthType != "server" {
			t.Fatalf("opened a record of auth type %q as server", rec.AuthType)
		}
		// The only records that open are those a key holder sealed: the
		// seeds' genuine ones.
		if !(rec.Seq == genuine.Seq && bytes.Equal(compact(rec.Auth), compact(genuine.Auth))) && !bytes.Equal(data, golden) {
			t.Fatalf("accepted a record that was never sealed: seq %d", rec.Seq)
		}
	})
}

func compact(b []byte) []byte {
	return bytes.Join(bytes.Fields(b), nil)
}

// A sealed record is an age file that only a key holder could have
// written, bound to its auth type.
func ExampleSeal() {
	k, err := crypto.GenerateKeyring(false)
	if err != nil {
		log.Fatal(err)
	}
	sealed, err := envelope.Seal(k, &envelope.Record{
		AuthType: "server",
		Seq:      1,
		Written:  time.Now(),
		Auth:     json.RawMessage(`{"access_token":"example"}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.SplitN(string(sealed), "\n", 2)[0])

	rec, key, err := envelope.Open(k, sealed, "", "server")
	fmt.Println(string(rec.Auth), "opened by identity", key, err)

	_, _, err = envelope.Open(k, sealed, "", "client")
	fmt.Println(err)
	// Output:
	// age-encryption.org/v1
	// {"access_token":"example"} opened by identity 0 <nil>
	// record is forged, corrupt or bound to another name: record belongs to auth type "server"
}

// testKeyring loads a test-only key from testdata.
func testKeyring(f *testing.F, name string) *crypto.Keyring {
	f.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "keys", name))
	if err != nil {
		f.Fatal(err)
	}
	k, err := crypto.ParseKeyring(bytes.NewReader(data))
	if err != nil {
		f.Fatal(err)
	}
	return k
}
