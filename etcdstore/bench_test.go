package etcdstore_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sessionstore/sessionstore"
)

// Each benchmark stands next to its floor, measured in the same run.

var sink sessionstore.AuthObject

// token2K is a session with a 2 KiB access token.
func token2K() sessionstore.AuthObject {
	a := sampleAuth()
	a.AccessToken = strings.Repeat("a", 2048)
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
	b.ReportMetric(float64(s.Reads()), "etcd-reads")
}
