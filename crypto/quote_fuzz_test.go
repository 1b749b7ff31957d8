package crypto_test

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

// No error quotes its input: a plaintext token, or a secret key, in place
// of a record or in a key file must never reach an error message (which
// the commands print and programs log). The two fuzz targets below insert
// a marker into arbitrary bytes and check, for every error, that neither
// the marker nor any other run of more than 4 input bytes appears in its
// message, unless it is one of our own words (the allowlists below: every
// message these functions can return, numbers written 0). The marker is 16
// letters derived from the input, so a failure reproduces from the input
// alone, and no message of ours can hold it by chance.

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

// keyFileErrors are the messages that opening a key file at fuzzKeyPath,
// its recipients file, a passphrase-protected or a sealed key file return
// (numbers written 0).
var keyFileErrors = func() []string {
	var m []string
	for _, s := range []string{
		"keyring: key file is too long",
		"keyring: wrong passphrase for the key file",
		"keyring: passphrase-protected key file: its age header is malformed or altered (or asks for an scrypt work factor above 2^0)",
		"keyring: passphrase-protected key file: its content is altered or truncated",
		"keyring: sealed key file: its age header is malformed or altered",
		"keyring: sealed key file: its content is altered or truncated",
		"keyring: no identity in " + fuzzIdentityFile + " opens the key file: it is sealed to other recipients",
		"keyring: line 0 of the key file is not valid",
		"keyring: the key file: identities file is not valid UTF-8",
		"keyring: the key file: failed to read identities file: bufio.Scanner: token too long",
		"keyring: the key file: no identities found",
	} {
		m = append(m, fuzzKeyPath+": "+s)
	}
	for _, s := range []string{
		"recipient 0 of 0 is X25519 but the primary key is post-quantum; age cannot mix them (make break-glass keys of the primary's kind)",
		"recipient 0 of 0 is post-quantum but the primary key is X25519; age cannot mix them (make break-glass keys of the primary's kind)",
		"line 0 of the recipients file is not valid",
		"the recipients file: recipients file is not valid UTF-8",
		"the recipients file: failed to read recipients file: bufio.Scanner: token too long",
	} {
		m = append(m, fuzzKeyPath+crypto.RecipientsSuffix+": recipients: "+s)
	}
	return m
}()

var fuzzIdentityFile = filepath.Join("..", "testdata", "keys", "test-x25519.key")

const fuzzKeyPath = "/fuzz/sessionstore.key"

// FuzzKeyFileErrorsQuoteNothing: whatever bytes a key file, its
// recipients file or a passphrase-protected key file holds (a secret key
// of the wrong kind or mistyped, a token pasted in), parsing it fails or
// succeeds, and no error quotes them.
func FuzzKeyFileErrorsQuoteNothing(f *testing.F) {
	defer crypto.SetMaxKeyFileWorkFactor(crypto.SetMaxKeyFileWorkFactor(10))
	old := crypto.KeyFileWorkFactor
	crypto.KeyFileWorkFactor = 10
	defer func() { crypto.KeyFileWorkFactor = old }()

	var keys [][]byte
	for _, name := range []string{"test-x25519.key", "test-pq.key"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "keys", name))
		if err != nil {
			f.Fatal(err)
		}
		keys = append(keys, data)
	}
	x, pq := testKeyring(f, "test-x25519.key"), testKeyring(f, "test-pq.key")
	protected, err := crypto.EncryptKeyFile(keys[0], "fuzz passphrase")
	if err != nil {
		f.Fatal(err)
	}
	// A key file sealed to an age recipient, opened with an identity file
	// (a native one: no plugin process per input).
	recipient, err := age.ParseX25519Recipient(x.PublicKey(0))
	if err != nil {
		f.Fatal(err)
	}
	sealed, err := crypto.SealKeyFile(keys[0], []age.Recipient{recipient})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		keys[0], keys[1],
		sealed, sealed[:len(sealed)/2],
		[]byte("ghp_1234567890abcdefgh\n"), // a token pasted into the key file
		[]byte("# a comment\nAGE-SECRET-KEY-1QQQQQQQQQQ\n"),
		[]byte("AGE-SECRET-KEY-PQ-1QQQQQQQQQQ\n"),
		[]byte("AGE-SECRET-KEY-1\n"),
		[]byte("age1qqqqqqqqqq\n"),
		[]byte("age1pq1qqqqqqqqqq\n"),
		[]byte(x.PublicKey(0) + "\n"),
		[]byte(pq.PublicKey(0) + "\n"),
		[]byte("\xff\xfe\n"),
		protected,
		protected[:len(protected)/2],
		[]byte(armor.Header + "\n"),
		[]byte(armor.Header + "\nnot base64\n" + armor.Footer + "\n"),
		[]byte("age-encryption.org/v1\n-> scrypt\n"),
	} {
		f.Add(seed, uint16(0))
		f.Add(seed, uint16(len(seed)/2))
		f.Add(seed, uint16(len(seed)))
	}
	f.Fuzz(func(t *testing.T, data []byte, at uint16) {
		input, marker := withMarker(data, at)
		check := func(err error) {
			t.Helper()
			if err != nil {
				assertQuotesNothing(t, input, marker, err.Error(), keyFileErrors)
			}
		}
		pass := func() (string, error) { return "fuzz passphrase", nil }
		id := crypto.KeyIdentity{File: fuzzIdentityFile}
		_, err := crypto.OpenKeyFiles(fuzzKeyPath, input, nil, pass, id) // the key file
		check(err)
		for _, key := range keys { // the recipients file, beside either kind of key
			_, err = crypto.OpenKeyFiles(fuzzKeyPath, key, input, pass, id)
			check(err)
		}
	})
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
		golden, err := os.ReadFile(filepath.Join("..", "testdata", "golden", name))
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
