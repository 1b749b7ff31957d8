package etcdstore

import (
	"time"

	"github.com/sessionstore/sessionstore/internal/reccache"

	"github.com/sessionstore/sessionstore"
)

// An entry is what a Store knows of one record. Entries are immutable once
// published: a change stores a new one.
type entry struct {
	ok      bool                    // auth holds the record's value
	auth    sessionstore.AuthObject // the value, owned by the cache
	modRev  int64                   // the etcd revision of the record's last change this Store knows of
	seq     uint64
	written time.Time // when the record was written
	maxSeq  uint64    // the highest sequence number seen, for sessionstore.ErrRollback
	gen     uint64    // the watch generation that vouches for it (see watchState)
}

// forgotten is e without its value: what remains after an invalidation.
func (e entry) forgotten() entry { return entry{maxSeq: e.maxSeq, modRev: e.modRev} }

// cache maps auth types to entries (see package reccache).
type cache = reccache.Cache[entry]
