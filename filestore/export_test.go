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

// WithWatcherFactory replaces fsnotify.NewWatcher (tests only).
func WithWatcherFactory(f func() (*fsnotify.Watcher, error)) Option {
	return func(o *options) { o.watcher = f }
}

// Overflow feeds s the error fsnotify reports when events were lost.
func (s *Store) Overflow() { s.handleWatchError(fsnotify.ErrEventOverflow) }

// WatchList returns the paths s's watcher watches: its inotify watches,
// which count against fs.inotify.max_user_watches and show in
// /proc/self/fdinfo.
func (s *Store) WatchList() []string {
	return s.watcher.hub.watching()
}
