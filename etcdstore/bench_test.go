package etcdstore_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sessionstore/sessionstore"
)

// Each benchmark stands next to its floor, measured in the same run.

var sink sessionstore.AuthObject

// tokenChars is the alphabet of a JWT (base64url and dots).
const tokenChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."

// tokenString is n characters of a JWT-like token, varied but
// deterministic.
func tokenString(seed uint32, n int) string {
	var b strings.Builder
	b.Grow(n)
	x := seed*2654435761 + 1
	for range n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b.WriteByte(tokenChars[x%uint32(len(tokenChars))])
	}
	return b.String()
}

// token2K is a realistic 2 KiB session: a 1.5 KiB access token (a JWT,
// say) and a 0.5 KiB refresh token.
func token2K() sessionstore.AuthObject {
	a := sampleAuth()
	a.AccessToken = tokenString(1, 1536)
	a.RefreshToken = tokenString(2, 512)
	return a
}

// BenchmarkGetHitFloor is the floor of a cache hit: a lock-free map lookup
// (atomic.Pointer[map]) returning the value.
func BenchmarkGetHitFloor(b *testing.B) {
	var p atomic.Pointer[map[string]sessionstore.AuthObject]
	m := map[string]sessionstore.AuthObject{"server": token2K()}
	p.Store(&m)
	b.ReportAllocs()
	for b.Loop() {
		a, ok := (*p.Load())["server"]
		if !ok {
			b.Fatal("miss")
		}
		sink = a
	}
}

func BenchmarkGetHit(b *testing.B) {
	e := newEnv(b)
	s := e.open(b)
	ctx := context.Background()
	if err := s.Set(ctx, "server", token2K()); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "the watch to vouch", s.Watching)
	b.ReportAllocs()
	for b.Loop() {
		a, err := s.Get(ctx, "server")
		if err != nil {
			b.Fatal(err)
		}
		sink = a
	}
}

// onTwo runs op b.N times, split between exactly two goroutines, so that
// ns/op against a one-goroutine run gives the speedup of a second core.
func onTwo(b *testing.B, op func() bool) {
	var wg sync.WaitGroup
	var failed atomic.Bool
	b.ResetTimer()
	for g := range 2 {
		n := b.N / 2
		if g == 0 {
			n = b.N - n
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if !op() {
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if failed.Load() {
		b.Fatal("a lookup failed")
	}
}

// BenchmarkGetHitParallelFloor is BenchmarkGetHitFloor on two goroutines.
func BenchmarkGetHitParallelFloor(b *testing.B) {
	var p atomic.Pointer[map[string]sessionstore.AuthObject]
	m := map[string]sessionstore.AuthObject{"server": token2K()}
	p.Store(&m)
	b.ReportAllocs()
	onTwo(b, func() bool {
		a, ok := (*p.Load())["server"]
		return ok && len(a.AccessToken) > 0
	})
}

// BenchmarkGetHitParallel is BenchmarkGetHit on two goroutines.
func BenchmarkGetHitParallel(b *testing.B) {
	e := newEnv(b)
	s := e.open(b)
	ctx := context.Background()
	if err := s.Set(ctx, "server", token2K()); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "the watch to vouch", s.Watching)
	b.ReportAllocs()
	onTwo(b, func() bool {
		a, err := s.Get(ctx, "server")
		return err == nil && len(a.AccessToken) > 0
	})
}
