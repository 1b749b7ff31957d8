package filestore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/sessionstore/sessionstore/crypto"
)

// The writers' note.
//
// A record's lock file holds a note from the last writer that held the
// lock: the SHA-256 of the record it wrote, that record's sequence number,
// and the fingerprint of the key it was sealed to. A Set needs no more of
// the record it replaces (a value does not matter to it, only that the
// record opens with a key this Store holds, and the sequence number to
// exceed), so a writer that finds the record the note describes does not
// decrypt it: one X25519 operation less per Set when writers alternate,
// across processes.
//
// The note is a hint, never trusted beyond the record it names: it counts
// only if the record's bytes hash to its digest, so a crash between the
// rename and the note, a writer that does not write notes (a rotation, an
// older version, Windows) or a replaced record leaves a note that matches
// nothing, and the writer reads the record in full. A note claims nothing
// that the directory's owner could not write in the record itself; its
// sequence number is bounded, so that a forged one cannot exhaust the
// sequence space.
const noteMagic = "sessionstore lock note 1\n"

const (
	noteDigest = len(noteMagic)
	noteSeq    = noteDigest + sha256.Size
	noteFP     = noteSeq + 8
	noteFPLen  = len("sha256:") + 32
	noteLen    = noteFP + noteFPLen
)

// maxNoteAhead bounds a note's sequence number: at most this far past the
// reader's clock (sequence numbers are write times in nanoseconds).
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
