package etcdstore

import (
	"context"

	"github.com/sessionstore/sessionstore/internal/names"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// WithHooks sets the watch goroutine's test seams: before each fresh read,
// between the fresh read and the Watch call, before it handles each watch response.
func WithHooks(beforeFreshRead, beforeWatch, onResponse func()) Option {
	return func(o *options) {
		o.hooks = testHooks{beforeFreshRead: beforeFreshRead, beforeWatch: beforeWatch, onResponse: onResponse}
	}
}

// CancelWatch ends the current watch, as a canceled watch would end.
func (s *Store) CancelWatch() { protocol.RestartFeed(s.Store) }

// StemOf is names.Stem.
var StemOf = names.Stem

// LeaseID is the ID of the Store's current lease, or 0.
func (s *Store) LeaseID() int64 {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.sess == nil {
		return 0
	}
	return int64(s.b.sess.Lease())
}

// AppliedSince is appliedSince (tests only).
func (s *Store) AppliedSince(ctx context.Context, key string, ct []byte, lockRev int64) (int64, bool, error) {
	return appliedSince(ctx, s.b.client, key, ct, lockRev)
}
