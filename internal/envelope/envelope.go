// Package envelope seals and opens one record: the auth object with its
// format version, namespace, auth type, sequence number and write time,
// under a MAC keyed by the secret of the identity it is sealed for, inside
// an age file. Every backend stores these bytes.
package envelope

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
)

// FormatVersion is the newest record format. Open reads every version
// ever written; Seal writes the oldest that holds the record: 1 binds the
// auth type (a file record), 2 also the namespace, 3 is 2 with the
// namespace optional, written only when Record.Version asks for it (a
// session marked as needing a new login, which older readers must refuse).
const FormatVersion = 3

// maxPlaintext bounds what a hostile file can make a reader allocate.
const maxPlaintext = 1 << 20

// A Record is the plaintext of one sealed record.
type Record struct {
	Version   int             `json:"v"`            // format version: what Open read; 3 asks Seal for version 3
	Namespace string          `json:"ns,omitempty"` // "" for a file record
	AuthType  string          `json:"auth_type"`    // the name the record is stored under
	Seq       uint64          `json:"seq"`          // grows on every write of this name
	Written   time.Time       `json:"written"`
	Auth      json.RawMessage `json:"auth"` // the auth object, as JSON
}

// envelope is the JSON form of a Record inside the age file.
type envelope struct {
	Record
	MAC []byte `json:"mac"`
}

// marshal encodes e with the auth object verbatim, as the MAC covers it
// (json.Marshal would escape '<' inside it).
func (e *envelope) marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(e)
	return buf.Bytes(), err
}

// Seal encrypts rec to k's recipients, with a MAC under the primary's key,
// in the version FormatVersion says (a record opened and sealed again
// keeps it).
func Seal(k *crypto.Keyring, rec *Record) ([]byte, error) {
	// The MAC covers the auth object as marshal writes it: compact.
	var auth bytes.Buffer
	if err := json.Compact(&auth, rec.Auth); err != nil {
		return nil, errors.New("seal: auth object is not valid JSON")
	}
	defer clear(auth.Bytes())
	env := envelope{Record: Record{1, rec.Namespace, rec.AuthType, rec.Seq, rec.Written.UTC(), auth.Bytes()}}
	switch {
	case rec.Version > FormatVersion:
		return nil, fmt.Errorf("seal: unknown record format version %d", rec.Version)
	case rec.Version == 3:
		env.Version = 3
	case rec.Namespace != "":
		env.Version = 2
	}
	env.MAC = recordMAC(macKey(k.Primary()), &env)
	pt, err := env.marshal()
	if err != nil {
		// All else encodes: the auth object is compact JSON.
		return nil, errors.New("seal: the write time is outside the years 0 to 9999")
	}
	defer clear(pt)
	var out bytes.Buffer
	w, err := age.Encrypt(&out, k.Recipients()...)
	if err == nil {
		_, err = w.Write(pt)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("seal: %v", err)
	}
	return out.Bytes(), nil
}

// Open decrypts and verifies a sealed record that must belong to namespace
// ("" for a file record) and authType. It returns the record and the index
// in k of the identity that opened it (0 is the primary). Errors wrap
// sessionstore.ErrWrongKey (no identity opens it) or
// sessionstore.ErrTampered (forged, corrupt, or bound to another auth type
// or namespace), and never quote the ciphertext or the plaintext.
func Open(k *crypto.Keyring, ciphertext []byte, namespace, authType string) (*Record, int, error) {
	if len(ciphertext) == 0 {
		return nil, -1, fmt.Errorf("%w: empty file", sessionstore.ErrTampered)
	}
	ids := k.Identities()
	for i, id := range ids {
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
		pt, err := io.ReadAll(io.LimitReader(r, maxPlaintext+1))
		defer clear(pt)
		if err != nil {
			return nil, i, fmt.Errorf("%w: age payload does not decrypt (truncated or altered)", sessionstore.ErrTampered)
		}
		if len(pt) > maxPlaintext {
			return nil, i, fmt.Errorf("%w: record is too large", sessionstore.ErrTampered)
		}
		rec, err := decode(pt, macKey(id), namespace, authType)
		return rec, i, err
	}
	if len(ids) == 1 {
		return nil, -1, fmt.Errorf("%w (1 identity tried)", sessionstore.ErrWrongKey)
	}
	return nil, -1, fmt.Errorf("%w (%d identities tried)", sessionstore.ErrWrongKey, len(ids))
}

// headerProblem says, without quoting it, why age refused ciphertext.
func headerProblem(ciphertext []byte) string {
	switch {
	case bytes.HasPrefix(bytes.TrimLeft(ciphertext, " \t\r\n"), []byte(armor.Header)):
		return "an armored age file, not a record (records are binary age files)"
	case !bytes.HasPrefix(ciphertext, []byte("age-encryption.org/v1\n")):
		return "not an age file"
	}
	return "the age header is malformed or does not verify"
}

// decode decodes and verifies pt, a record of namespace and authType.
func decode(pt, key []byte, namespace, authType string) (*Record, error) {
	var env envelope
	// Never wrap the JSON error: it could quote plaintext.
	if err := json.Unmarshal(pt, &env); err != nil {
		return nil, fmt.Errorf("%w: record is not valid JSON", sessionstore.ErrTampered)
	}
	var problem string
	switch {
	case env.Version == 1 && env.Namespace != "":
		problem = "version 1 record with a namespace"
	case env.Version == 2 && env.Namespace == "":
		problem = "version 2 record without a namespace"
	case env.Version < 1 || env.Version > FormatVersion:
		problem = fmt.Sprintf("unsupported record format version %d", env.Version)
	case !hmac.Equal(env.MAC, recordMAC(key, &env)):
		problem = "record MAC does not verify (not written by a key holder)"
	case env.Namespace != namespace && env.Namespace == "":
		problem = fmt.Sprintf("record has no namespace (a file record), want %q", namespace)
	case env.Namespace != namespace:
		problem = fmt.Sprintf("record belongs to namespace %q", env.Namespace)
	case env.AuthType != authType:
		problem = fmt.Sprintf("record belongs to auth type %q", env.AuthType)
	}
	if problem != "" {
		clear(env.Auth)
		return nil, fmt.Errorf("%w: %s", sessionstore.ErrTampered, problem)
	}
	return &env.Record, nil
}

// macKeys caches each identity's MAC key: deriving one encodes the secret
// key, too slow for every Seal and Open. It starts over past 64.
var macKeys struct {
	sync.Mutex
	m map[age.Identity][]byte
}

// macKey derives the MAC key of a keyring's identity (a pointer and a
// Stringer) from its secret. hkdf.Key fails only for absurd lengths.
func macKey(id age.Identity) []byte {
	macKeys.Lock()
	defer macKeys.Unlock()
	if key, ok := macKeys.m[id]; ok {
		return key
	}
	if len(macKeys.m) >= 64 || macKeys.m == nil {
		macKeys.m = make(map[age.Identity][]byte)
	}
	key, _ := hkdf.Key(sha256.New, []byte(id.(fmt.Stringer).String()), nil, "sessionstore record mac v1", 32)
	macKeys.m[id] = key
	return key
}

// recordMAC is HMAC-SHA-256 over an unambiguous encoding of every field
// but the MAC itself.
func recordMAC(key []byte, env *envelope) []byte {
	m := hmac.New(sha256.New, key)
	var b [8]byte
	putInt := func(v uint64) {
		binary.BigEndian.PutUint64(b[:], v)
		m.Write(b[:])
	}
	put := func(data []byte) {
		putInt(uint64(len(data)))
		m.Write(data)
	}
	put([]byte("sessionstore record"))
	putInt(uint64(env.Version))
	if env.Version >= 2 {
		put([]byte(env.Namespace))
	}
	put([]byte(env.AuthType))
	putInt(env.Seq)
	putInt(uint64(env.Written.UnixNano()))
	put(env.Auth)
	return m.Sum(nil)
}
