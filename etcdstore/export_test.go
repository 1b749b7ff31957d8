package etcdstore

import "context"

// WithHooks sets the watch goroutine's test seams: before each fresh read,
// between the fresh read and the Watch call, before it handles each watch response.
func WithHooks(beforeFreshRead, beforeWatch, onResponse func()) Option {
	return func(o *options) {
		o.hooks = testHooks{beforeFreshRead: beforeFreshRead, beforeWatch: beforeWatch, onResponse: onResponse}
	}
}

// Reads is the number of records read from etcd.
func (s *Store) Reads() uint64 { return s.reads.Load() }

// Sessions is the number of leases the Store started.
func (s *Store) Sessions() uint64 { return s.sessions.Load() }

// WatchGenerations is the number of times the watch started.
func (s *Store) WatchGenerations() uint64 { return s.watch.restarts.Load() }

// CancelWatch ends the current watch, as a canceled watch would end.
func (s *Store) CancelWatch() {
	if c := s.watch.cancel.Load(); c != nil {
		(*c)()
	}
}

// StemOf is stemOf.
var StemOf = stemOf

// LeaseID is the ID of the Store's current lease, or 0.
func (s *Store) LeaseID() int64 {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if s.sess == nil {
		return 0
	}
	return int64(s.sess.Lease())
}

// Opens is the number of records decrypted.
func (s *Store) Opens() uint64 { return s.opens.Load() }

// AppliedSince is appliedSince (tests only).
func (s *Store) AppliedSince(ctx context.Context, key string, ct []byte, lockRev int64) (int64, bool, error) {
	return s.appliedSince(ctx, key, ct, lockRev)
}

// DerivedUnderLock counts key derivations (scrypt) made while s held a
// record lock.
func (s *Store) DerivedUnderLock() uint64 { return s.derivedUnderLock.Load() }
