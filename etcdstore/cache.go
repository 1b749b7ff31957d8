package etcdstore

import (
	"sync"
	"sync/atomic"
	"time"

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

// cache maps auth types to entries, with lock-free reads so that a cache
// hit scales across cores (the same structure as filestore's). Names live in slots; a slot's entry is swapped
// atomically. The slots of most names are in read, a map that is never
// changed once published; names added since are in dirty, under mu, and
// are promoted into a new read map once lookups have missed read as many
// times as there are names (sync.Map's amortisation: adding a name costs
// O(1) on average, whatever the number of records).
type cache struct {
	read atomic.Pointer[map[string]*slot]

	mu     sync.Mutex // guards dirty, misses, and every change of an entry
	dirty  map[string]*slot
	misses int
}

type slot struct{ e atomic.Pointer[entry] }

// get returns name's entry, or nil. It takes no lock when name is in read.
func (c *cache) get(name string) *entry {
	if r := c.read.Load(); r != nil {
		if sl := (*r)[name]; sl != nil {
			return sl.e.Load()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sl := c.dirtySlotLocked(name, false)
	if sl == nil {
		return nil
	}
	return sl.e.Load()
}

// getLocked is get for a caller that holds c.mu.
func (c *cache) getLocked(name string) *entry {
	if r := c.read.Load(); r != nil {
		if sl := (*r)[name]; sl != nil {
			return sl.e.Load()
		}
	}
	if sl := c.dirty[name]; sl != nil {
		return sl.e.Load()
	}
	return nil
}

// update replaces name's entry with f(old) (old is the zero entry if there
// was none), under c.mu: updates of one cache never interleave.
func (c *cache) update(name string, f func(old entry) entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.updateLocked(name, f)
}

func (c *cache) updateLocked(name string, f func(old entry) entry) {
	sl := c.slotLocked(name)
	var old entry
	if e := sl.e.Load(); e != nil {
		old = *e
	}
	next := f(old)
	sl.e.Store(&next)
}

// updateExisting is update for a name that has an entry; it creates none.
func (c *cache) updateExisting(name string, f func(old entry) entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.getLocked(name) != nil {
		c.updateLocked(name, f)
	}
}

// updateAllLocked replaces every entry e with f(e). c.mu is held.
func (c *cache) updateAllLocked(f func(entry) entry) {
	each := func(m map[string]*slot) {
		for _, sl := range m {
			if e := sl.e.Load(); e != nil {
				next := f(*e)
				sl.e.Store(&next)
			}
		}
	}
	if r := c.read.Load(); r != nil {
		each(*r)
	}
	each(c.dirty)
}

// reset empties the cache.
func (c *cache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read.Store(nil)
	c.dirty, c.misses = nil, 0
}

// slotLocked returns name's slot, creating it in dirty. c.mu is held.
func (c *cache) slotLocked(name string) *slot {
	if r := c.read.Load(); r != nil {
		if sl := (*r)[name]; sl != nil {
			return sl
		}
	}
	return c.dirtySlotLocked(name, true)
}

// dirtySlotLocked looks name up in dirty, counting a miss of read, and
// creates its slot if create. c.mu is held.
func (c *cache) dirtySlotLocked(name string, create bool) *slot {
	if r := c.read.Load(); r != nil {
		if sl := (*r)[name]; sl != nil {
			return sl // promoted meanwhile
		}
	}
	sl := c.dirty[name]
	if sl == nil && create {
		if c.dirty == nil {
			c.dirty = make(map[string]*slot)
		}
		sl = &slot{}
		c.dirty[name] = sl
	}
	if sl != nil {
		c.misses++
		c.promoteLocked()
	}
	return sl
}

// promoteLocked publishes a new read map with dirty's slots once there have
// been as many misses as names. c.mu is held.
func (c *cache) promoteLocked() {
	var n int
	r := c.read.Load()
	if r != nil {
		n = len(*r)
	}
	if len(c.dirty) == 0 || c.misses < n+len(c.dirty) {
		return
	}
	m := make(map[string]*slot, n+len(c.dirty))
	if r != nil {
		for k, v := range *r {
			m[k] = v
		}
	}
	for k, v := range c.dirty {
		m[k] = v
	}
	c.read.Store(&m)
	c.dirty, c.misses = nil, 0
}
