package filestore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// Each benchmark of the store stands next to its baseline: the work that
// cannot be avoided. The targets bound the ratio (see TestPerformanceTargets
// and the README), never the absolute time.

// --- Get, cache hit --------------------------------------------------------

// baselineCache is the floor of a cache hit: a map lookup under an RWMutex
// returning the value.
type baselineCache struct {
	mu sync.RWMutex
	m  map[string]sessionstore.AuthObject
}

func (c *baselineCache) get(k string) (sessionstore.AuthObject, bool) {
	c.mu.RLock()
	a, ok := c.m[k]
	c.mu.RUnlock()
	return a, ok
}

var sink sessionstore.AuthObject

func BenchmarkGetHitBaseline(b *testing.B) {
	c := &baselineCache{m: map[string]sessionstore.AuthObject{"server": sampleAuth()}}
	b.ReportAllocs()
	for b.Loop() {
		a, ok := c.get("server")
		if !ok {
			b.Fatal("miss")
		}
		sink = a
	}
}

func BenchmarkGetHit(b *testing.B) {
	s := hitStore(b, 10)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		a, err := s.Get(ctx, "rec-5")
		if err != nil {
			b.Fatal(err)
		}
		sink = a
	}
}

func BenchmarkGetHitParallelBaseline(b *testing.B) {
	c := &baselineCache{m: map[string]sessionstore.AuthObject{"server": sampleAuth()}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var a sessionstore.AuthObject
		for pb.Next() {
			a, _ = c.get("server")
		}
		_ = a
	})
}

func BenchmarkGetHitParallel(b *testing.B) {
	s := hitStore(b, 10)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var a sessionstore.AuthObject
		for pb.Next() {
			a, _ = s.Get(ctx, "rec-5")
		}
		_ = a
	})
}

// hitStore returns a Store over n records whose watcher vouches for rec-5.
func hitStore(b *testing.B, n int) *filestore.Store {
	b.Helper()
	dir, key := b.TempDir(), newKeyFile(b, false)
	fillRecords(b, dir, key, n)
	s := openStore(b, dir, key)
	ctx := context.Background()
	for i := range 3 {
		_, err := s.Get(ctx, "rec-5")
		require.NoError(b, err)
		if i == 1 {
			waitFor(b, "the watcher", s.Watching)
		}
	}
	return s
}

// --- Cold start: Open + Get + Close -----------------------------------------

func BenchmarkColdStartBaseline(b *testing.B) {
	dir, key := b.TempDir(), newKeyFile(b, false)
	fillRecords(b, dir, key, 1)
	path := filepath.Join(dir, "rec-0.age")
	b.ReportAllocs()
	for b.Loop() {
		kf, err := os.ReadFile(key)
		if err != nil {
			b.Fatal(err)
		}
		ids, err := age.ParseIdentities(bytes.NewReader(kf))
		if err != nil {
			b.Fatal(err)
		}
		ct, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		r, err := age.Decrypt(bytes.NewReader(ct), ids...)
		if err != nil {
			b.Fatal(err)
		}
		pt, err := io.ReadAll(r)
		if err != nil {
			b.Fatal(err)
		}
		var env struct {
			Auth sessionstore.AuthObject `json:"auth"`
		}
		if err := json.Unmarshal(pt, &env); err != nil {
			b.Fatal(err)
		}
		sink = env.Auth
	}
}

func BenchmarkColdStart(b *testing.B) {
	dir, key := b.TempDir(), newKeyFile(b, false)
	fillRecords(b, dir, key, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := filestore.Open(dir, filestore.WithKeyFile(key))
		if err != nil {
			b.Fatal(err)
		}
		a, err := s.Get(ctx, "rec-0")
		if err != nil {
			b.Fatal(err)
		}
		sink = a
		s.Close()
	}
}

// --- Set and Update -----------------------------------------------------------

func BenchmarkSetBaseline(b *testing.B) {
	dir, key := b.TempDir(), newKeyFile(b, false)
	s := openStore(b, dir, key)
	recip := s.Keyring().Recipient()
	a := sampleAuth()
	b.ReportAllocs()
	for b.Loop() {
		if err := baselineSet(dir, recip, a); err != nil {
			b.Fatal(err)
		}
	}
}

// baselineSet is the floor of a Set: age.Encrypt of the JSON and a
// plaintext-agnostic durable write (temp file, fsync, rename, dir fsync).
func baselineSet(dir string, recip age.Recipient, a sessionstore.AuthObject) error {
	pt, err := json.Marshal(a)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recip)
	if err != nil {
		return err
	}
	w.Write(pt)
	if err := w.Close(); err != nil {
		return err
	}
	return fsutil.WriteFile(dir, "baseline.age", ".baseline.tmp-0", buf.Bytes(), nil)
}

func BenchmarkSet(b *testing.B) {
	benchSet(b, 1)
}

func benchSet(b *testing.B, n int) {
	dir, key := b.TempDir(), newKeyFile(b, false)
	if n > 1 {
		fillRecords(b, dir, key, n)
	}
	s := openStore(b, dir, key)
	ctx := context.Background()
	a := sampleAuth()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Set(ctx, "rec-0", a); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdate(b *testing.B) {
	dir, key := b.TempDir(), newKeyFile(b, false)
	s := openStore(b, dir, key)
	ctx := context.Background()
	require.NoError(b, s.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "0"}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Update(ctx, "server", increment); err != nil {
			b.Fatal(err)
		}
	}
}

// --- Scale: the cost does not grow with the number of records ---------------

func BenchmarkScale(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run("GetHit/records="+strconv.Itoa(n), func(b *testing.B) {
			s := hitStore(b, n)
			ctx := context.Background()
			for b.Loop() {
				sink, _ = s.Get(ctx, "rec-5")
			}
		})
		b.Run("Set/records="+strconv.Itoa(n), func(b *testing.B) { benchSet(b, n) })
	}
}

// --- Memory per cached record --------------------------------------------------

func BenchmarkMemoryPerCachedRecord(b *testing.B) {
	const n = 2000
	dir, key := b.TempDir(), newKeyFile(b, false)
	fillRecords(b, dir, key, n)
	ctx := context.Background()
	{ // one measurement, whatever b.N: it costs 2,000 decryptions
		s := openStore(b, dir, key, filestore.WithoutWatcher())
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range n {
			if _, err := s.Get(ctx, "rec-"+strconv.Itoa(i)); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/record")
		runtime.KeepAlive(s)
		s.Close()
	}
}
