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

// watchState is a Store's part in the process's watcher. The Store joins
// on the first Get that finds a cached entry (a short-lived process never
// does), and Close does not wait for it to leave.
type watchState struct {
	hub *hub        // the process's shared watcher, or a private one (tests)
	on  atomic.Bool // the watches are in place: entries may be trusted

	mu      sync.Mutex // guards started, stopped, dirs
	started bool
	stopped bool
	dirs    []string // the directories this Store subscribed to
}

func (ws *watchState) active() bool { return ws.on.Load() }

// start joins the watcher in the background, once.
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
	go ws.join(s)
}

// join watches the store directory, the key file's directory, and the
// store directory's parent, where a replacement of the directory itself
// shows (mv dir dir.old && mv dir.new dir).
func (ws *watchState) join(s *Store) {
	dirs := []string{s.dir}
	if s.keyFile != "" {
		dirs = append(dirs, filepath.Dir(s.keyFile))
	}
	if err := ws.hub.subscribe(s, dirs); err != nil {
		s.log.Warn("sessionstore: cannot watch, validating every read against the file", "dir", s.dir, "err", err)
		return
	}
	if parent := filepath.Dir(s.dir); parent != s.dir {
		if err := ws.hub.subscribe(s, []string{parent}); err != nil {
			s.log.Warn("sessionstore: cannot watch the store directory's parent: a replaced store directory will not be noticed", "dir", parent, "err", err)
		} else {
			dirs = append(dirs, parent)
		}
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.dirs = dirs
	if ws.stopped {
		go ws.hub.unsubscribe(s, dirs)
		return
	}
	ws.on.Store(true)
	s.log.Debug("sessionstore: watching", "dirs", dirs)
}

// stop leaves the watcher without waiting.
func (ws *watchState) stop(s *Store) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.stopped = true
	ws.on.Store(false)
	if ws.dirs != nil {
		go ws.hub.unsubscribe(s, ws.dirs)
	}
}

// A hub is one fsnotify watcher shared by every Store of the process
// (inotify instances are limited to 128 per user). It watches each
// directory once and hands each event to the Stores of the event's
// directory and of its path.
type hub struct {
	newWatcher func() (*fsnotify.Watcher, error)

	mu   sync.Mutex // guards w and subs
	w    *fsnotify.Watcher
	subs map[string]map[*Store]struct{} // watched directory → Stores
}

// processHub is the watcher every Store of the process shares.
var processHub = &hub{newWatcher: fsnotify.NewWatcher}

func (h *hub) subscribe(s *Store, dirs []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.w == nil {
		w, err := h.newWatcher()
		if err != nil {
			return err
		}
		h.w, h.subs = w, make(map[string]map[*Store]struct{})
		go h.run(w)
	}
	var added []string
	for _, d := range dirs {
		if h.subs[d] == nil {
			if err := h.w.Add(d); err != nil {
				for _, a := range added {
					h.leaveLocked(s, a)
				}
				h.closeIfIdleLocked()
				return err
			}
			h.subs[d] = make(map[*Store]struct{})
		}
		if _, ok := h.subs[d][s]; !ok {
			h.subs[d][s] = struct{}{}
			added = append(added, d)
		}
	}
	return nil
}

func (h *hub) unsubscribe(s *Store, dirs []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range dirs {
		h.leaveLocked(s, d)
	}
	h.closeIfIdleLocked()
}

func (h *hub) leaveLocked(s *Store, dir string) {
	subs := h.subs[dir]
	if subs == nil {
		return
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(h.subs, dir)
		if h.w != nil {
			h.w.Remove(dir) // already gone if the directory was removed
		}
	}
}

// closeIfIdleLocked closes the watcher when no Store uses it, without
// waiting (closing an inotify instance can block for about 10 ms).
func (h *hub) closeIfIdleLocked() {
	if h.w != nil && len(h.subs) == 0 {
		go h.w.Close()
		h.w, h.subs = nil, nil
	}
}

// watching returns the directories h watches (tests).
func (h *hub) watching() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.w == nil {
		return nil
	}
	return h.w.WatchList()
}

// storesFor returns the Stores interested in an event at name: those of
// its directory, and those watching name itself.
func (h *hub) storesFor(name string) []*Store {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*Store
	for s := range h.subs[filepath.Dir(name)] {
		out = append(out, s)
	}
	for s := range h.subs[name] {
		if _, dup := h.subs[filepath.Dir(name)][s]; !dup {
			out = append(out, s)
		}
	}
	return out
}

// rewatch watches dir again after the directory at that path was
// replaced, removed or renamed: the old watch follows the old inode. It
// reports whether a directory is now watched there.
func (h *hub) rewatch(w *fsnotify.Watcher, dir string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.w != w || h.subs[dir] == nil {
		return false
	}
	w.Remove(dir)
	return w.Add(dir) == nil
}

func (h *hub) run(w *fsnotify.Watcher) {
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			for _, s := range h.storesFor(ev.Name) {
				s.handleEvent(w, ev)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			h.mu.Lock()
			all := make(map[*Store]bool)
			for _, subs := range h.subs {
				for s := range subs {
					all[s] = true
				}
			}
			h.mu.Unlock()
			for s := range all {
				s.handleWatchError(err)
			}
		}
	}
}

// handleEvent applies one fsnotify event to s.
func (s *Store) handleEvent(w *fsnotify.Watcher, ev fsnotify.Event) {
	switch name := ev.Name; {
	case name == s.dir:
		// The directory itself was created, removed, renamed or replaced
		// (seen from the parent's watch, or by the directory's own):
		// whatever the cache holds may be another directory's.
		if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			s.dirReplaced(w)
		}
	case s.keyFile != "" && (name == s.keyFile || name == s.keyFile+crypto.RecipientsSuffix):
		// Loading can be heavy (scrypt): not on the shared watcher's
		// goroutine.
		go func() {
			if _, err := s.keys.Reload(); err != nil {
				s.log.Warn("sessionstore: key file changed but does not load; keeping the loaded keys", "err", err)
			}
		}()
	case filepath.Dir(name) == s.dir: // one of s's records?
		if stem, ok := strings.CutSuffix(filepath.Base(name), recordSuffix); ok {
			if authType, ok := nameOf(stem); ok {
				s.invalidate(authType, name)
			}
		}
	}
}

// dirReplaced drops the cache and watches the directory now at s.dir. Until
// that watch is in place every Get validates against the file.
func (s *Store) dirReplaced(w *fsnotify.Watcher) {
	ws := &s.watcher
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.on.Store(false)
	s.events.Add(1)
	s.dropAll()
	if ws.stopped {
		return
	}
	if ws.hub.rewatch(w, s.dir) {
		ws.on.Store(true)
		s.log.Info("sessionstore: store directory replaced; cache dropped, watching the new one", "dir", s.dir)
		return
	}
	s.log.Warn("sessionstore: store directory went away; validating every read against the file until it is back", "dir", s.dir)
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
// exactly the cached bytes; an entry that does is trusted, if no other
// event came since.
func (s *Store) invalidate(authType, path string) {
	after := s.events.Add(1) // before looking: a concurrent fill will not be trusted
	// Look under the cache's lock, not lock-free: a fill that read the
	// events counter before the Add above holds it until its entry is in.
	cached := false
	s.cache.UpdateExisting(authType, func(e entry) entry {
		cached = e.ok
		return e
	})
	if !cached {
		return
	}
	data, err := readRecord(path)
	present := err == nil
	d := sha256.Sum256(data)
	s.cache.Update(authType, func(e entry) entry {
		if e.ok && (!present || e.digest != d) {
			return e.forgotten()
		}
		if e.ok && !e.trusted && s.watcher.active() && s.events.Load() == after {
			e.trusted = true
		}
		return e
	})
}

// dropAll drops every cached value, keeping sequence numbers.
func (s *Store) dropAll() { s.cache.UpdateAll(entry.forgotten) }
