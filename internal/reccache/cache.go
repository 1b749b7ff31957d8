// Package reccache is the record cache that filestore and etcdstore share:
// a map from auth types to immutable entries with lock-free reads.
package reccache

import (
	"sync"
	"sync/atomic"
)

// A Cache maps auth types to entries of type E, with lock-free reads so
// that a cache hit scales across cores. Names live in slots; a slot's entry is swapped
// atomically. The slots of most names are in read, a map that is never
// changed once published; names added since are in dirty, under mu, and
// are promoted into a new read map once lookups have missed read as many
// times as there are names (sync.Map's amortisation: adding a name costs
// O(1) on average, whatever the number of records).
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
	sl := c.dirtySlotLocked(name, false)
	if sl == nil {
		return nil
	}
	return sl.e.Load()
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
	sl := c.slotLocked(name)
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
	if sl := c.dirtySlotLocked(name, false); sl != nil && sl.e.Load() != nil {
		next := f(*sl.e.Load())
		sl.e.Store(&next)
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

// slotLocked returns name's slot, creating it in dirty. c.mu is held.
func (c *Cache[E]) slotLocked(name string) *slot[E] {
	if r := c.read.Load(); r != nil {
		if sl := (*r)[name]; sl != nil {
			return sl
		}
	}
	return c.dirtySlotLocked(name, true)
}

// dirtySlotLocked looks name up in dirty, counting a miss of read, and
// creates its slot if create. c.mu is held.
func (c *Cache[E]) dirtySlotLocked(name string, create bool) *slot[E] {
	if r := c.read.Load(); r != nil {
		if sl := (*r)[name]; sl != nil {
			return sl // promoted meanwhile
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
	var n int
	r := c.read.Load()
	if r != nil {
		n = len(*r)
	}
	if len(c.dirty) == 0 || c.misses < n+len(c.dirty) {
		return
	}
	m := make(map[string]*slot[E], n+len(c.dirty))
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

// Lock takes the cache's lock, which orders every change of an entry: a
// caller that holds it sees no change until Unlock.
func (c *Cache[E]) Lock() { c.mu.Lock() }

// Unlock releases the cache's lock.
func (c *Cache[E]) Unlock() { c.mu.Unlock() }
