package envelope_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
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

// recordErrors are the messages Open and OpenIn return for bytes that are
// not a genuine record of the name (numbers written 0).
var recordErrors = func() []string {
	tampered, wrong := sessionstore.ErrTampered.Error(), sessionstore.ErrWrongKey.Error()
	var m []string
	for _, s := range []string{
		"empty file",
		"not an age file",
		"an armored age file, not a record (records are binary age files)",
		"the age header is malformed or does not verify",
		"age payload does not decrypt (truncated or altered)",
		"record is too large",
		"record is not valid JSON",
		"version 0 record with a namespace",
		"version 0 record without a namespace",
		"unsupported record format version 0",
		"record MAC does not verify (not written by a key holder)",
		`record has no namespace (a file record), want "` + fuzzNamespace + `"`,
	} {
		m = append(m, tampered+": "+s)
	}
	return append(m, wrong+" (0 identity tried)", wrong+" (0 identities tried)")
}()

const fuzzNamespace = "/fuzz/prefix"

// FuzzRecordErrorsQuoteNothing: whatever bytes stand in place of a record
// (a plaintext token, an age file of another program, a damaged record),
// opening it fails, or yields a genuine record, and no error quotes them.
func FuzzRecordErrorsQuoteNothing(f *testing.F) {
	x := testKeyring(f, "test-x25519.key")
	other := testKeyring(f, "test-other.key")
	two, err := crypto.NewKeyring(append(x.Identities(), other.Identities()...)...)
	if err != nil {
		f.Fatal(err)
	}
	pq := testKeyring(f, "test-pq.key")
	ct, err := envelope.Seal(x, testRecord())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		[]byte("ghp_1234567890abcdefgh"), // a token where a record should be
		[]byte(`{"access_token":"plaintext","refresh_token":"plaintext"}`),
		[]byte("age-encryption.org/v1\n"),
		[]byte("age-encryption.org/v1\n-> X25519 AAAA\nAAAA\n--- AAAA\n"),
		[]byte("age-encryption.org/v1\n-> \n"),
		[]byte("age-encryption.org/v1\n-> X25519\n\n--- \n"),
		[]byte("age-encryption.org/v2\n"),
		[]byte(armor.Header + "\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCg==\n" + armor.Footer + "\n"),
		ct,
		ct[:len(ct)/2],
		ct[:40],
	} {
		f.Add(seed, uint16(0))
		f.Add(seed, uint16(len(seed)/2))
		f.Add(seed, uint16(len(seed)))
	}
	for _, name := range []string{"v1-x25519.age", "v1-x25519-bitflip.age", "v1-x25519-truncated.age", "v1-pq.age", "v2-x25519.age"} {
		golden, err := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(golden, uint16(30))
	}
	f.Fuzz(func(t *testing.T, data []byte, at uint16) {
		input, marker := withMarker(data, at)
		for _, k := range []*crypto.Keyring{x, two, pq} {
			if _, _, err := envelope.Open(k, input, "", "server"); err != nil {
				assertQuotesNothing(t, input, marker, err.Error(), recordErrors)
			}
			if _, _, err := envelope.Open(k, input, fuzzNamespace, "server"); err != nil {
				assertQuotesNothing(t, input, marker, err.Error(), recordErrors)
			}
		}
	})
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

// withMarker returns data with a marker of 16 letters inserted at
// at%(len(data)+1), and the marker.
func withMarker(data []byte, at uint16) ([]byte, string) {
	sum := sha256.Sum256(data)
	m := make([]byte, 16)
	for i := range m {
		m[i] = "QZXJVKWPYFGBHMDN"[sum[i]%16] + byte(i%2)*('a'-'A') // letters, mixed case
	}
	p := int(at) % (len(data) + 1)
	in := make([]byte, 0, len(data)+len(m))
	in = append(append(append(in, data[:p]...), m...), data[p:]...)
	return in, string(m)
}

// normDigits writes every run of digits in s as one 0.
func normDigits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			if i == 0 || s[i-1] < '0' || s[i-1] > '9' {
				b.WriteByte('0')
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// assertQuotesNothing fails t if msg holds marker, or a run of 5 bytes
// that is in input but in none of the allowed messages.
func assertQuotesNothing(t *testing.T, input []byte, marker, msg string, allowed []string) {
	t.Helper()
	if strings.Contains(msg, marker) {
		t.Fatalf("the error quotes its input (marker %s): %q", marker, msg)
	}
	const n = 5 // "longer than 4 characters"
	for i := 0; i+n <= len(msg); i++ {
		w := msg[i : i+n]
		if !bytes.Contains(input, []byte(w)) {
			continue
		}
		nw := normDigits(w)
		ours := false
		for _, a := range allowed {
			if strings.Contains(normDigits(a), nw) {
				ours = true
				break
			}
		}
		if !ours {
			t.Fatalf("the error quotes %q of its input: %q", w, msg)
		}
	}
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
