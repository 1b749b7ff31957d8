package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sessionstore/sessionstore/internal/keys"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// maxRecordSize bounds what a reader reads of a record file.
const maxRecordSize = 2 << 20

// A Store keeps sealed sessions in one directory, one file per auth type.
// It implements sessionstore.Store. It is safe for concurrent use by
// goroutines and, through file locks, by processes.
type Store struct {
	dir     string
	keyFile string // "" when opened WithKeyring
	watch   bool
	remote  bool // on a network file system: never trust a file's identity for its bytes
	euid    int  // the user that opened the Store, who must own its directory
	log     *slog.Logger
	fault   fsutil.FaultFunc // test seam for the write path

	keys *keys.Keys

	cache  cache // by auth type
	closed atomic.Bool

	dirMu sync.RWMutex // guards dir; held for reading while a write fsyncs it
	dirFD *fsutil.Dir  // the store directory, open for fsync; nil until the first write

	// events counts the watcher's invalidations; an entry read before a
	// change of it is not trusted (see entry.trusted).
	events  atomic.Uint64
	watcher watchState
}

var _ sessionstore.Store = (*Store)(nil)

// Open opens the store in dir, creating dir (mode 0700) if it does not
// exist. It reads no record. Without WithKeyFile or WithKeyring it uses the
// key file named by $SESSIONSTORE_KEY_FILE, else
// $CREDENTIALS_DIRECTORY/sessionstore.key. The keys are loaded and checked
// first: an Open that fails creates nothing.
func Open(dir string, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	s := &Store{
		dir:   dir,
		watch: !o.noWatch,
		log:   o.keys.Log,
		fault: o.fault,
		euid:  os.Geteuid(),
	}
	s.watcher.hub = processHub
	if o.watcher != nil {
		s.watcher.hub = &hub{newWatcher: o.watcher} // a test's own
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	o.keys.Pkg, o.keys.Log = "filestore", s.log
	var err error
	if s.keys, err = keys.New(o.keys); err != nil {
		return nil, err
	}
	if s.keyFile = s.keys.File(); s.keyFile != "" {
		keys.RemoveTemp(s.keyFile, s.log)
	}
	// Only now that the keys are loaded: a failed Open leaves no
	// directory behind.
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	// inotify does not see other hosts' or mounts' writes, and their file
	// attributes may be cached.
	if fsType, remote := fsutil.NetworkFS(dir); remote {
		s.remote = true
		if s.watch {
			s.watch = false
			s.log.Info("sessionstore: network file system, watcher off: every Get validates against the file",
				"dir", dir, "fs", fsType)
		}
	}
	return s, nil
}

// ensureDir makes sure dir is a private directory, creating it and its
// missing parents; if it fails, it removes the directories it created.
func ensureDir(dir string) error {
	created, err := mkdirAll(dir)
	if err != nil {
		err = fmt.Errorf("filestore: %w", err)
	} else {
		err = checkStoreDir(dir)
	}
	if err != nil {
		for _, d := range created {
			os.Remove(d)
		}
	}
	return err
}

// mkdirAll is os.MkdirAll(dir, 0o700), each directory it makes chmod'ed to
// 0700 whatever the umask. It returns the directories it made, the deepest
// first, even with an error.
func mkdirAll(dir string) (created []string, err error) {
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if created, err = mkdirAll(parent); err != nil {
			return created, err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return created, nil // made meanwhile by someone else: not ours to remove
		}
		return created, err
	}
	return append([]string{dir}, created...), os.Chmod(dir, 0o700)
}

// checkDir checks, before a write, that the directory is still private
// to the user that opened the Store.
func (s *Store) checkDir() (fs.FileInfo, error) {
	fi, err := os.Stat(s.dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if err := fsutil.CheckPrivateDirFor(s.dir, fi, s.euid); err != nil {
		return nil, fmt.Errorf("filestore: store directory %w", err)
	}
	return fi, nil
}

// openDir returns the store directory open for fsync, the one checkDir
// saw as fi, and the function to call when done with it. Close waits for
// that call.
func (s *Store) openDir(fi fs.FileInfo) (*fsutil.Dir, func(), error) {
	s.dirMu.RLock()
	if d := s.dirFD; d != nil && d.Is(fi) {
		return d, s.dirMu.RUnlock, nil
	}
	s.dirMu.RUnlock()
	s.dirMu.Lock() // held by this write: the first one, or one after a replacement
	if s.closed.Load() {
		s.dirMu.Unlock()
		return nil, nil, fmt.Errorf("filestore: write: %w", sessionstore.ErrClosed)
	}
	if d := s.dirFD; d == nil || !d.Is(fi) {
		if d != nil {
			d.Close()
			s.dirFD = nil
		}
		d, err := fsutil.OpenDir(s.dir)
		if err != nil {
			s.dirMu.Unlock()
			return nil, nil, fmt.Errorf("filestore: %w", err)
		}
		if !d.Is(fi) {
			d.Close()
			s.dirMu.Unlock()
			return nil, nil, fmt.Errorf("filestore: store directory %s was replaced during a write", s.dir)
		}
		s.dirFD = d
	}
	return s.dirFD, s.dirMu.Unlock, nil
}

// Keyring returns the keyring the Store currently uses.
func (s *Store) Keyring() *crypto.Keyring { return s.keys.Ring() }

func (s *Store) recordPath(stem string) string { return filepath.Join(s.dir, stem+recordSuffix) }

// List returns the auth types stored in the directory, sorted. Files that
// are not records of this store are skipped.
func (s *Store) List(ctx context.Context) ([]string, error) {
	if err := s.checkOpen("list"); err != nil {
		return nil, err
	}
	return listDir(ctx, s.dir, false)
}

// listDir returns the auth types of dir's records, sorted; with locks, also
// those that have only a lock file (a record being written for the first
// time, or deleted).
func listDir(ctx context.Context, dir string, locks bool) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	var names []string
	for _, de := range des {
		stem, ok := strings.CutSuffix(de.Name(), recordSuffix)
		if !ok && locks {
			stem, ok = strings.CutSuffix(de.Name(), lockSuffix)
		}
		// Anything but a directory is listed, so that a FIFO or symlink
		// planted in place of a record is reported by Get and Check
		// rather than silently skipped.
		if !ok || de.IsDir() {
			continue
		}
		if name, ok := nameOf(stem); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("filestore: %s %s: %w", op, s.dir, sessionstore.ErrClosed)
	}
	return nil
}

// Close releases the Store. It does not wait for the watcher to shut down,
// so a short-lived process never pays for tearing down inotify. Calls after
// Close return sessionstore.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.cache.Reset()
	s.watcher.stop(s)
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	if s.dirFD != nil {
		s.dirFD.Close()
		s.dirFD = nil
	}
	return nil
}
