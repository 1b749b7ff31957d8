package filestore

import (
	"crypto/sha256"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fsnotify/fsnotify"

	"github.com/sessionstore/sessionstore/crypto"
)

// watchState runs the Store's fsnotify watcher. It starts lazily, on the
// first Get that finds a cached entry (a short-lived process that reads a
// record once never starts it), and Close does not wait for it to stop.
//
// Until the watcher is up, and forever where it cannot be (inotify limits,
// network file systems, WithoutWatcher), every Get validates its cached
// entry against the record file's bytes.
type watchState struct {
	newWatcher func() (*fsnotify.Watcher, error)
	on         atomic.Bool // the watches are in place: entries may be trusted

	mu      sync.Mutex // guards started, stopped, w
	started bool
	stopped bool
	w       *fsnotify.Watcher
}

func (ws *watchState) active() bool { return ws.on.Load() }

// start starts the watcher in the background, once.
func (ws *watchState) start(s *Store) {
	if !s.watch || ws.on.Load() {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.started || ws.stopped {
		return
	}
	ws.started = true
	go ws.run(s)
}

// stop shuts the watcher down without waiting: closing an inotify instance
// can block for about 10 ms in the kernel.
func (ws *watchState) stop() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.stopped = true
	ws.on.Store(false)
	if w := ws.w; w != nil {
		ws.w = nil
		go w.Close()
	}
}

func (ws *watchState) run(s *Store) {
	w, err := ws.newWatcher()
	if err != nil {
		s.log.Warn("sessionstore: no watcher, validating every read against the file", "dir", s.dir, "err", err)
		return
	}
	dirs := []string{s.dir}
	if s.keyFile != "" && filepath.Dir(s.keyFile) != s.dir {
		dirs = append(dirs, filepath.Dir(s.keyFile))
	}
	for _, d := range dirs {
		if err := w.Add(d); err != nil {
			s.log.Warn("sessionstore: cannot watch, validating every read against the file", "dir", d, "err", err)
			go w.Close()
			return
		}
	}
	ws.mu.Lock()
	if ws.stopped {
		ws.mu.Unlock()
		go w.Close()
		return
	}
	ws.w = w
	ws.on.Store(true)
	ws.mu.Unlock()
	s.log.Debug("sessionstore: watching", "dirs", dirs)

	defer func() {
		// The watcher is gone: nothing vouches for the cache any more.
		ws.on.Store(false)
		s.distrustAll()
	}()
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if !s.handleEvent(ev) {
				s.log.Warn("sessionstore: store directory went away, validating every read against the file", "dir", s.dir)
				ws.mu.Lock()
				ws.w = nil
				ws.mu.Unlock()
				go w.Close()
				return
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.handleWatchError(err)
		}
	}
}

// handleEvent applies one fsnotify event. It reports false if the store
// directory itself went away.
func (s *Store) handleEvent(ev fsnotify.Event) bool {
	switch name := ev.Name; {
	case name == s.dir:
		return !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename)
	case s.keyFile != "" && (name == s.keyFile || name == s.keyFile+crypto.RecipientsSuffix):
		if _, err := s.reloadKeys(); err != nil {
			s.log.Warn("sessionstore: key file changed but does not load; keeping the loaded keys", "err", err)
		}
	case filepath.Dir(name) == s.dir && strings.HasSuffix(name, recordSuffix):
		stem := strings.TrimSuffix(filepath.Base(name), recordSuffix)
		if authType, ok := nameOf(stem); ok {
			s.invalidate(authType, name)
		}
	}
	return true
}

// handleWatchError applies an error from the watcher. An overflow means
// events were lost: any record may have changed.
func (s *Store) handleWatchError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		s.events.Add(1)
		s.dropAll()
		return
	}
	s.log.Warn("sessionstore: watcher error", "dir", s.dir, "err", err)
}

// invalidate drops authType's cached value unless the file still holds
// exactly the cached bytes (the Store's own write keeps its entry).
func (s *Store) invalidate(authType, path string) {
	s.events.Add(1) // before looking: a concurrent fill will not be trusted
	// Look under the cache's lock, not lock-free: a fill that read the
	// events counter before the Add above holds the lock until its entry
	// is in place, so it is seen here.
	s.cache.mu.Lock()
	e := s.cache.getLocked(authType)
	cached := e != nil && e.ok
	s.cache.mu.Unlock()
	if !cached {
		return
	}
	s.reads.Add(1)
	data, err := readRecord(path)
	present := err == nil
	d := sha256.Sum256(data)
	s.cache.update(authType, func(e entry) entry {
		if e.ok && (!present || e.digest != d) {
			return e.forgotten()
		}
		return e
	})
}

// dropAll drops every cached value, keeping sequence numbers.
func (s *Store) dropAll() { s.cache.updateAll(entry.forgotten) }

// distrustAll makes every cached entry be validated at its next Get.
func (s *Store) distrustAll() {
	s.cache.updateAll(func(e entry) entry { e.trusted = false; return e })
}
