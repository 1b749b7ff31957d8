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
	"strconv"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/sessionstore/sessionstore"
)

// FormatVersion is the newest record format, the one Seal writes for a
// record with a namespace. Open reads every version ever written.
//
//   - Version 1 binds the auth type. Seal still writes it for a record
//     without a namespace (a file record), so that an older reader on the
//     same host opens what a newer writer sealed.
//   - Version 2 also binds the namespace: the etcd prefix a record is
//     stored under. A record copied to another prefix does not open there.
const FormatVersion = 2

// maxPlaintext bounds a decrypted record, so that a hostile file cannot
// make a reader allocate without limit.
const maxPlaintext = 1 << 20

// A Record is the plaintext of one sealed record.
type Record struct {
	Version   int             // format version; Seal sets it
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

// appendJSON appends e's JSON form, as encoding/json would write it (the
// field names and order of envelope), without reflection and without
// compacting Auth again: it is copied verbatim, as the MAC covers it.
func (e *envelope) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.Version), 10)
	if e.Namespace != "" {
		b = append(b, `,"ns":`...)
		b = appendString(b, e.Namespace)
	}
	b = append(b, `,"auth_type":`...)
	b = appendString(b, e.AuthType)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"written":`...)
	w, err := e.Written.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b = append(b, w...)
	b = append(b, `,"auth":`...)
	b = append(b, e.Auth...)
	b = append(b, `,"mac":"`...)
	b = base64.StdEncoding.AppendEncode(b, e.MAC)
	return append(b, "\"}\n"...), nil
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// Seal encrypts rec to k's primary recipient and extra recipients, with a
// MAC under the primary's key. rec.Version is ignored: Seal writes version
// 1 for a record without a namespace and FormatVersion for one with a
// namespace.
func (k *Keyring) Seal(rec *Record) ([]byte, error) {
	// The MAC covers the auth object's bytes as they will stand in the
	// file: compact JSON (what json.Marshal writes), copied verbatim.
	valid, compact := scanJSON(rec.Auth)
	if !valid {
		return nil, errors.New("seal: auth object is not valid JSON")
	}
	auth := rec.Auth
	if !compact {
		var buf bytes.Buffer
		json.Compact(&buf, auth) // valid: cannot fail
		auth = buf.Bytes()
		defer clear(auth)
	}
	env := envelope{
		Version:   1,
		Namespace: rec.Namespace,
		AuthType:  rec.AuthType,
		Seq:       rec.Seq,
		Written:   rec.Written.UTC(),
		Auth:      auth,
	}
	if rec.Namespace != "" {
		env.Version = FormatVersion
	}
	env.MAC = recordMAC(k.macKeys[0], &env)
	pt, err := env.appendJSON(make([]byte, 0, len(auth)+256))
	if err != nil {
		return nil, fmt.Errorf("seal: %v", err)
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

func (k *Keyring) verify(pt []byte, i int, namespace, authType string) (*Record, error) {
	// The form Seal writes parses without reflection, and must then carry
	// a MAC that verifies; anything else goes through encoding/json.
	if env, ok := parseCanonical(pt); ok && (env.Version == 1 && env.Namespace == "" || env.Version == 2 && env.Namespace != "") &&
		hmac.Equal(env.MAC, recordMAC(k.macKeys[i], &env)) {
		return k.bound(&env, namespace, authType)
	}
	var env envelope
	if err := json.Unmarshal(pt, &env); err != nil {
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
	default:
		return nil, fmt.Errorf("%w: unsupported record format version %d", sessionstore.ErrTampered, env.Version)
	}
	if !hmac.Equal(env.MAC, recordMAC(k.macKeys[i], &env)) {
		return nil, fmt.Errorf("%w: record MAC does not verify (not written by a key holder)", sessionstore.ErrTampered)
	}
	return k.bound(&env, namespace, authType)
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
