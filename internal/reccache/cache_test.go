package reccache

import (
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// entry stands for a backend's cache entry.
type entry struct {
	ok          bool
	seq, maxSeq uint64
}

func (e entry) forgotten() entry { return entry{maxSeq: e.maxSeq} }

func TestCachePromotesAndKeepsEveryName(t *testing.T) {
	var c Cache[entry]
	const n = 10_000
	for i := range n {
		name := strconv.Itoa(i)
		c.Update(name, func(entry) entry { return entry{ok: true, seq: uint64(i), maxSeq: uint64(i)} })
		require.NotNil(t, c.Get(name))
	}
	for i := range n {
		e := c.Get(strconv.Itoa(i))
		require.NotNil(t, e)
		assert.Equal(t, uint64(i), e.seq)
	}
	r := c.read.Load()
	require.NotNil(t, r, "names were promoted to the lock-free map")
	assert.Greater(t, len(*r), n/2)
	assert.Nil(t, c.Get("absent"))

	c.UpdateAll(entry.forgotten)
	assert.False(t, c.Get("5").ok)
	assert.Equal(t, uint64(5), c.Get("5").maxSeq, "forgetting keeps the sequence number")
	c.Reset()
	assert.Nil(t, c.Get("5"))
}

func TestCacheConcurrentReadersAndWriters(t *testing.T) {
	var c Cache[entry]
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				name := strconv.Itoa(i % 50)
				if w%2 == 0 {
					c.Update(name, func(e entry) entry { e.seq++; e.ok = true; return e })
				} else if e := c.Get(name); e != nil {
					_ = e.seq
				}
			}
		})
	}
	wg.Wait()
	total := uint64(0)
	for i := range 50 {
		total += c.Get(strconv.Itoa(i)).seq
	}
	assert.Equal(t, uint64(2*2000), total, "no update was lost")
}
