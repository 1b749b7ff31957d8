package filestore

import (
	"crypto/sha256"

	"github.com/sessionstore/sessionstore/internal/reccache"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// An entry is what a Store knows of one record. Entries are immutable once
// published: a change stores a new one.
type entry struct {
	ok      bool                    // auth holds the record's value
	auth    sessionstore.AuthObject // the value, owned by the cache
	digest  [sha256.Size]byte       // of the record file's bytes
	seq     uint64
	maxSeq  uint64 // the highest sequence number seen, for sessionstore.ErrRollback
	trusted bool   // the watcher vouches for it: Get returns it without I/O

	// id is the record file's identity when its bytes were last read; if
	// idSafe (read long enough after the file changed: see
	// fsutil.FileID), an equal identity stands for equal bytes, and one
	// fstatat validates the entry.
	id     fsutil.FileID
	idSafe bool
}

// forgotten is e without its value: what remains after an invalidation.
func (e entry) forgotten() entry { return entry{maxSeq: e.maxSeq} }

// cache maps auth types to entries (see package reccache).
type cache = reccache.Cache[entry]
