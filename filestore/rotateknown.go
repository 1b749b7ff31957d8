package filestore

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

// A knownSet carries what a rotation learnt of each record file from one
// step to the next, so that no record is decrypted twice: the check before
// step 1 keeps each record it opened, step 2 reseals from it if the file
// is unchanged, and step 3 accepts a file that still holds the bytes step
// 2 wrote or found under the new primary. Files are known by the digest of
// their bytes. A nil *knownSet knows nothing. Safe for concurrent use.
type knownSet struct {
	mu sync.Mutex
	m  map[string]knownRec // by path
}

type knownRec struct {
	digest  [sha256.Size]byte
	rec     *envelope.Record // the check's plaintext; for step 3, Seq and Written alone
	pub     string           // the public key of the identity that opened it
	expiry  time.Time        // of rec's auth object
	primary bool             // sealed to the new primary (for step 3)
}

func newKnownSet() *knownSet { return &knownSet{m: make(map[string]knownRec)} }

func (k *knownSet) put(path string, data []byte, kn knownRec) {
	if k == nil {
		return
	}
	kn.digest = sha256.Sum256(data)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[path] = kn
}

// plain returns the record the check opened from exactly data at path,
// once.
func (k *knownSet) plain(path string, data []byte) (knownRec, bool) {
	if k == nil {
		return knownRec{}, false
	}
	d := sha256.Sum256(data)
	k.mu.Lock()
	defer k.mu.Unlock()
	kn, ok := k.m[path]
	delete(k.m, path)
	if ok && (kn.primary || kn.digest != d) {
		clear(kn.rec.Auth)
		ok = false
	}
	return kn, ok
}

// verified notes that data at path is rec, sealed to the new primary.
func (k *knownSet) verified(path string, data []byte, rec *envelope.Record, expiry time.Time) {
	k.put(path, data, knownRec{rec: &envelope.Record{Seq: rec.Seq, Written: rec.Written}, expiry: expiry, primary: true})
}

// dropPlaintexts forgets every plaintext step 2 did not take.
func (k *knownSet) dropPlaintexts() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for path, kn := range k.m {
		if !kn.primary {
			clear(kn.rec.Auth)
			delete(k.m, path)
		}
	}
}

// verify fills r if its file still holds bytes known to be sealed to the
// primary of ring, and reports whether it did.
func (k *knownSet) verify(ring *crypto.Keyring, r *RecordStatus) bool {
	k.mu.Lock()
	kn, ok := k.m[r.Location]
	k.mu.Unlock()
	if !ok || !kn.primary {
		return false
	}
	data, err := readRecord(r.Location)
	if err != nil || sha256.Sum256(data) != kn.digest {
		return false
	}
	*r = RecordStatus{Store: r.Store, AuthType: r.AuthType, Location: r.Location,
		Key: 0, PublicKey: ring.PublicKey(0), Seq: kn.rec.Seq, Written: kn.rec.Written, Expiry: kn.expiry}
	return true
}
