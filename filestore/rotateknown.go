package filestore

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

// A knownSet carries what a rotation learnt of each record file from one
// step to the next, so that no record is decrypted more than once: the
// check before step 1 keeps each record it opened (by the digest of the
// file's bytes), step 2 reseals from it if the file is unchanged, and step
// 3 accepts a file that still holds the bytes step 2 wrote or found under
// the new primary. A nil *knownSet knows nothing. Safe for concurrent use.
type knownSet struct {
	mu  sync.Mutex // guards pre and ok
	pre map[string]plainRecord
	ok  map[string]verifiedRecord
}

type plainRecord struct {
	digest [sha256.Size]byte
	rec    *envelope.Record
	pub    string    // the public key of the identity that opened it
	expiry time.Time // of rec's auth object
}

type verifiedRecord struct {
	digest  [sha256.Size]byte // of bytes sealed to the new primary
	seq     uint64
	written time.Time
	expiry  time.Time
}

func newKnownSet() *knownSet {
	return &knownSet{pre: make(map[string]plainRecord), ok: make(map[string]verifiedRecord)}
}

func (k *knownSet) addPlain(path string, data []byte, rec *envelope.Record, pub string, expiry time.Time) {
	p := plainRecord{digest: sha256.Sum256(data), rec: rec, pub: pub, expiry: expiry}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pre[path] = p
}

// plain returns the record opened from exactly data at path, once.
func (k *knownSet) plain(path string, data []byte) (plainRecord, bool) {
	if k == nil {
		return plainRecord{}, false
	}
	d := sha256.Sum256(data)
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.pre[path]
	delete(k.pre, path)
	if !ok || p.digest != d {
		if ok {
			clear(p.rec.Auth)
		}
		return plainRecord{}, false
	}
	return p, true
}

// verified notes that data at path is rec, whose auth object expires at
// expiry, sealed to the new primary.
func (k *knownSet) verified(path string, data []byte, rec *envelope.Record, expiry time.Time) {
	if k == nil {
		return
	}
	v := verifiedRecord{digest: sha256.Sum256(data), seq: rec.Seq, written: rec.Written, expiry: expiry}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ok[path] = v
}

// dropPlaintexts forgets every plaintext not used by step 2.
func (k *knownSet) dropPlaintexts() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for path, p := range k.pre {
		clear(p.rec.Auth)
		delete(k.pre, path)
	}
}

// verify fills r if its file still holds bytes known to be sealed to the
// primary of ring, and reports whether it did.
func (k *knownSet) verify(ring *crypto.Keyring, r *RecordStatus) bool {
	k.mu.Lock()
	v, ok := k.ok[r.Location]
	k.mu.Unlock()
	if !ok {
		return false
	}
	data, err := readRecord(r.Location)
	if err != nil || sha256.Sum256(data) != v.digest {
		return false
	}
	*r = RecordStatus{Store: r.Store, AuthType: r.AuthType, Location: r.Location,
		Key: 0, PublicKey: ring.PublicKey(0), Seq: v.seq, Written: v.written, Expiry: v.expiry}
	return true
}
