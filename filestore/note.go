package filestore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/sessionstore/sessionstore/crypto"
)

// The writers' note, in each record's lock file: the SHA-256 of the record
// the last writer wrote, its sequence number, and the fingerprint of the
// key it was sealed to. That is all a Set needs of the record it replaces,
// so a Set that finds that record does not decrypt it. The note is a hint:
// it counts only for the record whose bytes hash to it, and its sequence
// number is bounded so that a forged one cannot exhaust the sequence space.
const noteMagic = "sessionstore lock note 1\n"

const (
	noteDigest = len(noteMagic)
	noteSeq    = noteDigest + sha256.Size
	noteFP     = noteSeq + 8
	noteFPLen  = len("sha256:") + 32
	noteLen    = noteFP + noteFPLen
)

// maxNoteAhead bounds a note's sequence number (a write time in ns) past
// the reader's clock.
const maxNoteAhead = 24 * time.Hour

// A note is the writers' note of one record.
type note struct {
	digest [sha256.Size]byte
	seq    uint64
	fp     string // the fingerprint of the key the record was sealed to
}

func (n *note) marshal() []byte {
	b := make([]byte, 0, noteLen)
	b = append(b, noteMagic...)
	b = append(b, n.digest[:]...)
	b = binary.BigEndian.AppendUint64(b, n.seq)
	return append(b, n.fp...)
}

// readNote returns the note in fd, or nil if there is none that parses.
func readNote(fd lockFD) *note {
	var buf [noteLen + 1]byte
	return parseNote(buf[:fd.readNote(buf[:])])
}

// parseNote parses a lock file's contents: nil unless they are a note.
func parseNote(b []byte) *note {
	if len(b) != noteLen || !bytes.HasPrefix(b, []byte(noteMagic)) {
		return nil
	}
	n := &note{seq: binary.BigEndian.Uint64(b[noteSeq:]), fp: string(b[noteFP:noteLen])}
	copy(n.digest[:], b[noteDigest:])
	return n
}

// vouchesFor reports whether n describes the record whose digest is d,
// sealed to a key that ring holds, with a plausible sequence number.
func (n *note) vouchesFor(d [sha256.Size]byte, ring *crypto.Keyring, now time.Time) bool {
	if n == nil || n.digest != d || n.seq > uint64(max(now.Add(maxNoteAhead).UnixNano(), 0)) {
		return false
	}
	for i := range ring.Len() {
		if ring.Fingerprint(i) == n.fp {
			return true
		}
	}
	return false
}
