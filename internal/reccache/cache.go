// Package reccache is the record cache that filestore and the fleet
// backends (through internal/protocol) share: a map from auth types to
// immutable entries with lock-free reads.
package reccache

import (
	"maps"
	"sync"
	"sync/atomic"
)

// A Cache maps auth types to entries of type E, with lock-free reads so
// that a cache hit scales across cores. A name's slot holds its entry,
// swapped atomically. The slots of most names are in read, a map never
// changed once published; names added since are in dirty, under mu, and
// are promoted into a new read map once lookups have missed read as many
// times as there are names (sync.Map's amortisation: adding a name costs
// O(1) on average).
type Cache[E any] struct {
	read atomic.Pointer[map[string]*slot[E]]

	mu     sync.Mutex // guards dirty, misses, and every change of an entry
	dirty  map[string]*slot[E]
	misses int
}

type slot[E any] struct{ e atomic.Pointer[E] }

// Get returns name's entry, or nil. It takes no lock when name is in read.
func (c *Cache[E]) Get(name string) *E {
	if r := c.read.Load(); r != nil {
		if sl := (*r)[name]; sl != nil {
			return sl.e.Load()
		}
	}
	return c.getDirty(name)
}

// getDirty is Get for a name not in read: apart, so that Get inlines.
func (c *Cache[E]) getDirty(name string) *E {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sl := c.slotLocked(name, false); sl != nil {
		return sl.e.Load()
	}
	return nil
}

// Update replaces name's entry with f(old) (old is the zero entry if there
// was none), under c.mu: updates of one cache never interleave.
func (c *Cache[E]) Update(name string, f func(old E) E) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.UpdateLocked(name, f)
}

// UpdateLocked is Update for a caller that holds the cache's lock.
func (c *Cache[E]) UpdateLocked(name string, f func(old E) E) {
	sl := c.slotLocked(name, true)
	var old E
	if e := sl.e.Load(); e != nil {
		old = *e
	}
	next := f(old)
	sl.e.Store(&next)
}

// UpdateExisting is Update for a name that has an entry; it creates none.
func (c *Cache[E]) UpdateExisting(name string, f func(old E) E) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sl := c.slotLocked(name, false); sl != nil {
		if e := sl.e.Load(); e != nil {
			next := f(*e)
			sl.e.Store(&next)
		}
	}
}

// UpdateAll replaces every entry e with f(e).
func (c *Cache[E]) UpdateAll(f func(E) E) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.UpdateAllLocked(f)
}

// UpdateAllLocked is UpdateAll for a caller that holds the cache's lock.
func (c *Cache[E]) UpdateAllLocked(f func(E) E) {
	each := func(m map[string]*slot[E]) {
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

// Reset empties the cache.
func (c *Cache[E]) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read.Store(nil)
	c.dirty, c.misses = nil, 0
}

// slotLocked returns name's slot, creating it in dirty if create. A slot
// found in dirty counts as a miss of read. c.mu is held.
func (c *Cache[E]) slotLocked(name string, create bool) *slot[E] {
	if r := c.read.Load(); r != nil {
		if sl := (*r)[name]; sl != nil {
			return sl
		}
	}
	sl := c.dirty[name]
	if sl == nil && create {
		if c.dirty == nil {
			c.dirty = make(map[string]*slot[E])
		}
		sl = &slot[E]{}
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
func (c *Cache[E]) promoteLocked() {
	r := c.read.Load()
	var m map[string]*slot[E]
	if r != nil {
		m = *r
	}
	if len(c.dirty) == 0 || c.misses < len(m)+len(c.dirty) {
		return
	}
	next := make(map[string]*slot[E], len(m)+len(c.dirty))
	maps.Copy(next, m)
	maps.Copy(next, c.dirty)
	c.read.Store(&next)
	c.dirty, c.misses = nil, 0
}

// Lock takes the cache's lock, which orders every change of an entry: a
// caller that holds it sees no change until Unlock.
func (c *Cache[E]) Lock() { c.mu.Lock() }

// Unlock releases the cache's lock.
func (c *Cache[E]) Unlock() { c.mu.Unlock() }
