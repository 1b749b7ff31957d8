package filestore

import (
	"github.com/fsnotify/fsnotify"

	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// WithFault injects failures into the write path (tests only).
func WithFault(f fsutil.FaultFunc) Option { return func(o *options) { o.fault = f } }

// Watching reports whether s's watcher is up (tests only).
func (s *Store) Watching() bool { return s.watcher.active() }

// StartWatcher starts s's watcher now instead of lazily (tests only).
func (s *Store) StartWatcher() { s.watcher.start(s) }

// StemOf and NameOf expose the name escaping (tests only).
var (
	StemOf = stemOf
	NameOf = nameOf
)

// WatcherStarted reports whether s ever tried to start its watcher.
func (s *Store) WatcherStarted() bool {
	s.watcher.mu.Lock()
	defer s.watcher.mu.Unlock()
	return s.watcher.started
}

// Reads and Opens count record files read and records decrypted.
func (s *Store) Reads() uint64 { return s.reads.Load() }
func (s *Store) Opens() uint64 { return s.opens.Load() }

// WithWatcherFactory replaces fsnotify.NewWatcher (tests only).
func WithWatcherFactory(f func() (*fsnotify.Watcher, error)) Option {
	return func(o *options) { o.watcher = f }
}

// Overflow feeds s the error fsnotify reports when events were lost.
func (s *Store) Overflow() { s.handleWatchError(fsnotify.ErrEventOverflow) }

// WatchList returns the paths s's watcher watches.
func (s *Store) WatchList() []string {
	return s.watcher.hub.watching()
}

// DerivedUnderLock counts key derivations (scrypt) made while s held a
// record lock.
func (s *Store) DerivedUnderLock() uint64 { return s.derivedUnderLock.Load() }

// KeyFilesSafe reports whether s checks its key files by identity.
func (s *Store) KeyFilesSafe() bool { return s.keys.FilesSafe() }

// Trusted reports whether authType's cached entry is vouched for by the
// watcher (a Get returns it without I/O).
func (s *Store) Trusted(authType string) bool {
	e := s.cache.Get(authType)
	return e != nil && e.trusted
}

// Prefetching reports whether a background load of authType is under way.
func (s *Store) Prefetching(authType string) bool {
	_, busy := s.prefetching.Load(authType)
	return busy
}
