package crypto

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/sessionstore/sessionstore"
)

// FormatVersion is the newest record format. Open reads every version
// ever written; Seal writes the oldest that holds the record, so that
// older readers open what a newer writer sealed whenever they can.
//
//   - Version 1 binds the auth type. Seal writes it for a record without
//     a namespace (a file record).
//   - Version 2 also binds the namespace: the etcd prefix a record is
//     stored under. A record copied to another prefix does not open there.
//     Seal writes it for a record with a namespace.
//   - Version 3 is version 2 with the namespace optional, for an auth
//     object that a reader must not misread by skipping a field it does
//     not know: a session marked as needing a new login. A reader older
//     than version 3 refuses the record instead of dropping the mark.
//     Seal writes it when rec.Version asks for it.
const FormatVersion = 3

// maxPlaintext bounds a decrypted record, so that a hostile file cannot
// make a reader allocate without limit.
const maxPlaintext = 1 << 20

// A Record is the plaintext of one sealed record.
type Record struct {
	Version   int             // format version: what Open read; 3 asks Seal for version 3
	Namespace string          // the etcd prefix the record is stored under; "" for a file
	AuthType  string          // the name the record is stored under
	Seq       uint64          // grows on every write of this name
	Written   time.Time       // when it was written
	Auth      json.RawMessage // the auth object, as JSON
}

// envelope is the JSON form of a Record inside the age file.
type envelope struct {
	Version   int             `json:"v"`
	Namespace string          `json:"ns,omitempty"` // version 2
	AuthType  string          `json:"auth_type"`
	Seq       uint64          `json:"seq"`
	Written   time.Time       `json:"written"`
	Auth      json.RawMessage `json:"auth"`
	MAC       []byte          `json:"mac"`
}

// marshal returns e's JSON form as encoding/json writes it without HTML
// escaping: the auth object stands in it verbatim (compact JSON, as the
// MAC covers it; json.Marshal would write '<', '>' and '&' inside it as
// \u003c, \u003e and \u0026). It is written into one buffer sized for
// the largest encoding of e, so that no copy of the auth object is left
// behind in a buffer that had to grow; the caller clears it. (The Encoder
// builds the encoding first in a buffer of its own, which encoding/json
// pools for reuse and nothing outside it can clear.)
func (e *envelope) marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(e.maxJSONLen())
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		wipe(&buf)
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxJSONLen bounds the length of e's encoding by marshal: the auth
// object as it is, a string's byte at most 6 (\u00XX, or \ufffd for a
// byte that is not UTF-8), and the field names, numbers, time and
// punctuation within envelopeJSONOverhead.
func (e *envelope) maxJSONLen() int {
	return len(e.Auth) + 6*(len(e.Namespace)+len(e.AuthType)) + base64.StdEncoding.EncodedLen(len(e.MAC)) + envelopeJSONOverhead
}

// envelopeJSONOverhead is more than the bytes of an envelope's encoding
// beside its auth object, strings' contents and MAC: 142 for names and
// punctuation, 20-digit numbers and the longest time encoding.
const envelopeJSONOverhead = 192

// wipe clears buf's whole backing array, written or not.
func wipe(buf *bytes.Buffer) {
	b := buf.Bytes()
	clear(b[:cap(b)])
}

// Seal encrypts rec to k's primary recipient and extra recipients, with a
// MAC under the primary's key. It writes version 1 for a record without a
// namespace and 2 for one with a namespace, unless rec.Version asks for 3:
// a record opened and sealed again keeps its version.
func (k *Keyring) Seal(rec *Record) ([]byte, error) {
	// The MAC covers the auth object's bytes as they will stand in the
	// file: compact JSON (what json.Marshal writes), which marshal copies
	// verbatim. Compact grows auth to len(rec.Auth) before it writes, and
	// writes nothing (but may leave a partial copy) for invalid JSON.
	var auth bytes.Buffer
	defer wipe(&auth)
	if err := json.Compact(&auth, rec.Auth); err != nil {
		return nil, errors.New("seal: auth object is not valid JSON")
	}
	env := envelope{
		Version:   1,
		Namespace: rec.Namespace,
		AuthType:  rec.AuthType,
		Seq:       rec.Seq,
		Written:   rec.Written.UTC(),
		Auth:      auth.Bytes(),
	}
	switch {
	case rec.Version > FormatVersion:
		return nil, fmt.Errorf("seal: unknown record format version %d", rec.Version)
	case rec.Version == 3:
		env.Version = 3
	case rec.Namespace != "":
		env.Version = 2
	}
	env.MAC = recordMAC(k.macKeys[0], &env)
	pt, err := env.marshal()
	if err != nil {
		// All else encodes: the auth object is compact JSON.
		return nil, errors.New("seal: the write time is outside the years 0 to 9999")
	}
	defer clear(pt)
	var out bytes.Buffer
	out.Grow(len(pt) + 256)
	w, err := age.Encrypt(&out, k.Recipients()...)
	if err != nil {
		return nil, fmt.Errorf("seal: %v", err)
	}
	if _, err := w.Write(pt); err != nil {
		return nil, fmt.Errorf("seal: %v", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal: %v", err)
	}
	return out.Bytes(), nil
}

// Open decrypts and verifies a sealed record that must belong to
// authType, without a namespace (a file record). It returns the record and
// the index in k of the identity that opened it (0 is the primary). Errors
// wrap sessionstore.ErrWrongKey (no identity opens it) or
// sessionstore.ErrTampered (forged, corrupt, or bound to another auth type
// or namespace), and never include plaintext.
func (k *Keyring) Open(ciphertext []byte, authType string) (*Record, int, error) {
	return k.OpenIn(ciphertext, "", authType)
}

// OpenIn is Open for a record stored in namespace (an etcd prefix). A
// record of another namespace, or of none (version 1, a file record), is
// sessionstore.ErrTampered.
func (k *Keyring) OpenIn(ciphertext []byte, namespace, authType string) (*Record, int, error) {
	if len(ciphertext) == 0 {
		return nil, -1, fmt.Errorf("%w: empty file", sessionstore.ErrTampered)
	}
	for i, id := range k.ids {
		r, err := age.Decrypt(bytes.NewReader(ciphertext), id)
		if err != nil {
			var nm *age.NoIdentityMatchError
			if errors.As(err, &nm) {
				continue
			}
			// Never wrap age's error: it can quote the file's bytes (a
			// plaintext token where a record should be).
			return nil, -1, fmt.Errorf("%w: %s", sessionstore.ErrTampered, headerProblem(ciphertext))
		}
		pt, err := readPlaintext(r, len(ciphertext))
		if err != nil {
			return nil, i, fmt.Errorf("%w: age payload does not decrypt (truncated or altered)", sessionstore.ErrTampered)
		}
		if len(pt) > maxPlaintext {
			return nil, i, fmt.Errorf("%w: record is too large", sessionstore.ErrTampered)
		}
		rec, err := k.verify(pt, i, namespace, authType)
		clear(pt)
		return rec, i, err
	}
	if len(k.ids) == 1 {
		return nil, -1, fmt.Errorf("%w (1 identity tried)", sessionstore.ErrWrongKey)
	}
	return nil, -1, fmt.Errorf("%w (%d identities tried)", sessionstore.ErrWrongKey, len(k.ids))
}

// ageIntro is the first line of every age file (not armored).
const ageIntro = "age-encryption.org/v1\n"

// headerProblem says, in words of its own, why age refused ciphertext's
// header: age's error is never passed on, since it can quote the input.
func headerProblem(ciphertext []byte) string {
	switch {
	case bytes.HasPrefix(bytes.TrimLeft(ciphertext, " \t\r\n"), []byte(armor.Header)):
		return "an armored age file, not a record (records are binary age files)"
	case !bytes.HasPrefix(ciphertext, []byte(ageIntro)):
		return "not an age file"
	}
	return "the age header is malformed or does not verify"
}

// verify is decode, with the decoded auth object of a record it refuses
// cleared.
func (k *Keyring) verify(pt []byte, i int, namespace, authType string) (*Record, error) {
	var env envelope
	rec, err := k.decode(pt, &env, i, namespace, authType)
	if err != nil {
		clear(env.Auth) // decoded, not returned
	}
	return rec, err
}

// decode decodes pt into env, checks its version and MAC under the key of
// identity i, and returns its record if it belongs to namespace and
// authType.
func (k *Keyring) decode(pt []byte, env *envelope, i int, namespace, authType string) (*Record, error) {
	// Auth, a json.RawMessage, keeps the auth object's bytes as they stand
	// in the record: what the MAC covers.
	if err := json.Unmarshal(pt, env); err != nil {
		// Never wrap the JSON error: it could quote plaintext.
		return nil, fmt.Errorf("%w: record is not valid JSON", sessionstore.ErrTampered)
	}
	switch env.Version {
	case 1:
		if env.Namespace != "" {
			return nil, fmt.Errorf("%w: version 1 record with a namespace", sessionstore.ErrTampered)
		}
	case 2:
		if env.Namespace == "" {
			return nil, fmt.Errorf("%w: version 2 record without a namespace", sessionstore.ErrTampered)
		}
	case 3: // with or without a namespace
	default:
		return nil, fmt.Errorf("%w: unsupported record format version %d", sessionstore.ErrTampered, env.Version)
	}
	if !hmac.Equal(env.MAC, recordMAC(k.macKeys[i], env)) {
		return nil, fmt.Errorf("%w: record MAC does not verify (not written by a key holder)", sessionstore.ErrTampered)
	}
	return k.bound(env, namespace, authType)
}

// bound checks that a verified envelope belongs to namespace and authType,
// and returns its record.
func (k *Keyring) bound(env *envelope, namespace, authType string) (*Record, error) {
	if env.Namespace != namespace {
		if env.Namespace == "" {
			return nil, fmt.Errorf("%w: record has no namespace (a file record), want %q", sessionstore.ErrTampered, namespace)
		}
		return nil, fmt.Errorf("%w: record belongs to namespace %q", sessionstore.ErrTampered, env.Namespace)
	}
	if env.AuthType != authType {
		return nil, fmt.Errorf("%w: record belongs to auth type %q", sessionstore.ErrTampered, env.AuthType)
	}
	return &Record{
		Version:   env.Version,
		Namespace: env.Namespace,
		AuthType:  env.AuthType,
		Seq:       env.Seq,
		Written:   env.Written,
		Auth:      env.Auth,
	}, nil
}

// readPlaintext reads r to its end, or to one byte past maxPlaintext, into
// one buffer sized for a plaintext shorter than its ciphertext of size n
// (as an age payload is): no copy of a secret is left behind in a buffer
// that had to grow, and a reader allocates once.
func readPlaintext(r io.Reader, n int) ([]byte, error) {
	pt := make([]byte, 0, min(n, maxPlaintext)+1)
	for len(pt) <= maxPlaintext {
		if len(pt) == cap(pt) {
			grown := make([]byte, len(pt), min(2*cap(pt), maxPlaintext+1))
			copy(grown, pt)
			clear(pt)
			pt = grown
		}
		m, err := r.Read(pt[len(pt):cap(pt)])
		pt = pt[:len(pt)+m]
		if err == io.EOF {
			return pt, nil
		}
		if err != nil {
			clear(pt)
			return nil, err
		}
	}
	return pt, nil
}

// recordMAC is HMAC-SHA-256 over an unambiguous encoding of every field
// but the MAC itself.
func recordMAC(key []byte, env *envelope) []byte {
	m := hmac.New(sha256.New, key)
	var b [8]byte
	put := func(data []byte) {
		binary.BigEndian.PutUint64(b[:], uint64(len(data)))
		m.Write(b[:])
		m.Write(data)
	}
	put([]byte("sessionstore record"))
	binary.BigEndian.PutUint64(b[:], uint64(env.Version))
	m.Write(b[:])
	if env.Version >= 2 {
		put([]byte(env.Namespace))
	}
	put([]byte(env.AuthType))
	binary.BigEndian.PutUint64(b[:], env.Seq)
	m.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(env.Written.UnixNano()))
	m.Write(b[:])
	put(env.Auth)
	return m.Sum(nil)
}
