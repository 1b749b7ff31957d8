package filestore

import (
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
