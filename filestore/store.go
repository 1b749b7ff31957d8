package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"
	"github.com/fsnotify/fsnotify"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// KeyFileEnv names the environment variable that Open reads the key file's
// path from when no key option is given.
const KeyFileEnv = "SESSIONSTORE_KEY_FILE"

// credentialsKeyName is the key file's name in $CREDENTIALS_DIRECTORY
// (systemd credentials), the second default.
const credentialsKeyName = "sessionstore.key"

// maxRecordSize bounds what a reader reads of a record file.
const maxRecordSize = 2 << 20

// A Store keeps sealed sessions in one directory, one file per auth type.
// It is safe for concurrent use by goroutines and, through file locks,
// by processes.
type Store struct {
	dir     string
	keyFile string          // "" when opened WithKeyring
	extra   []age.Recipient // WithRecipients
	skew    time.Duration
	watch   bool
	log     *slog.Logger
	now     func() time.Time
	fault   fsutil.FaultFunc // test seam for the write path

	keyMu      sync.Mutex // serialises key reloads; guards passphrase
	keys       atomic.Pointer[keyState]
	askPass    func() (string, error) // WithPassphrase
	passphrase string                 // asked once, for a protected key file
	havePass   bool

	cache  cache // by auth type
	closed atomic.Bool

	// events counts the watcher's invalidations; an entry read before a
	// change of it is not trusted (see entry.trusted).
	events  atomic.Uint64
	watcher watchState

	// Counters for tests and debugging: record files read, records
	// decrypted.
	reads, opens atomic.Uint64
}

// keyState is a loaded keyring and a digest of the files it came from.
type keyState struct {
	ring   *crypto.Keyring
	digest [sha256.Size]byte
}

// An Option configures Open.
type Option func(*options)

type options struct {
	keyFile string
	keyring *crypto.Keyring
	extra   []age.Recipient
	skew    time.Duration
	noWatch bool
	logger  *slog.Logger
	now     func() time.Time
	fault   fsutil.FaultFunc
	watcher func() (*fsnotify.Watcher, error)
	askPass func() (string, error)
}

// WithKeyFile reads the keys from an age identity file (and its
// ".recipients" file). The Store reloads them when they change, so it
// follows a rotation.
func WithKeyFile(path string) Option { return func(o *options) { o.keyFile = path } }

// WithKeyring uses fixed keys. Such a Store cannot follow a rotation:
// long-running processes should use WithKeyFile.
func WithKeyring(k *crypto.Keyring) Option { return func(o *options) { o.keyring = k } }

// WithRecipients seals every record to r as well, beyond the primary and
// the key file's ".recipients".
func WithRecipients(r ...age.Recipient) Option {
	return func(o *options) { o.extra = append(o.extra, r...) }
}

// WithPassphrase gives the passphrase of a passphrase-protected key file
// (an age-encrypted identity file, as "age -p" writes). It is called at
// most once per Open, and only if the key file is protected; the Store
// keeps the passphrase to reload the key file after a rotation.
func WithPassphrase(passphrase func() (string, error)) Option {
	return func(o *options) { o.askPass = passphrase }
}

// WithExpirySkew makes TokenSource refresh a token this long before it
// expires. The default is 10 seconds, as in golang.org/x/oauth2.
func WithExpirySkew(d time.Duration) Option { return func(o *options) { o.skew = d } }

// WithoutWatcher disables fsnotify: every Get validates its cached entry
// against the record file. This is the mode a Store falls back to by itself
// where a directory cannot be watched.
func WithoutWatcher() Option { return func(o *options) { o.noWatch = true } }

// WithLogger logs the Store's background events (watcher failures, key
// reloads) to l. The default discards them.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Open opens the store in dir, creating dir (mode 0700) if it does not
// exist. It reads no record. Without WithKeyfile or WithKeyring it uses the
// key file named by $SESSIONSTORE_KEY_FILE, else
// $CREDENTIALS_DIRECTORY/sessionstore.key.
func Open(dir string, opts ...Option) (*Store, error) {
	o := options{skew: 10 * time.Second, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.keyring == nil && o.keyFile == "" {
		var err error
		if o.keyFile, err = DefaultKeyFile(); err != nil {
			return nil, err
		}
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	s := &Store{
		dir:     dir,
		extra:   o.extra,
		skew:    o.skew,
		watch:   !o.noWatch,
		log:     o.logger,
		now:     o.now,
		fault:   o.fault,
		askPass: o.askPass,
	}
	s.watcher.newWatcher = o.watcher
	if s.watcher.newWatcher == nil {
		s.watcher.newWatcher = fsnotify.NewWatcher
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if o.keyring != nil {
		ring, err := o.keyring.WithRecipients(o.extra...)
		if err != nil {
			return nil, fmt.Errorf("filestore: %w", err)
		}
		s.keys.Store(&keyState{ring: ring})
		return s, nil
	}
	s.keyFile = o.keyFile
	if abs, err := filepath.Abs(o.keyFile); err == nil {
		s.keyFile = abs
	}
	if _, err := s.reloadKeys(); err != nil {
		return nil, err
	}
	return s, nil
}

// DefaultKeyFile returns the key file Open uses without a key option:
// $SESSIONSTORE_KEY_FILE, else $CREDENTIALS_DIRECTORY/sessionstore.key.
func DefaultKeyFile() (string, error) {
	if p := os.Getenv(KeyFileEnv); p != "" {
		return p, nil
	}
	if d := os.Getenv("CREDENTIALS_DIRECTORY"); d != "" {
		return filepath.Join(d, credentialsKeyName), nil
	}
	return "", fmt.Errorf("filestore: no key file: set $%s or pass WithKeyFile; make one with: rekey -init -key FILE", KeyFileEnv)
}

func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("filestore: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil { // whatever the umask
			return fmt.Errorf("filestore: %w", err)
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if err := fsutil.CheckPrivateDir(dir, fi); err != nil {
		return fmt.Errorf("filestore: store directory %w", err)
	}
	return nil
}

// reloadKeys rereads the key files and swaps the keyring in if they
// changed. It reports whether they did. With WithKeyring it does nothing.
func (s *Store) reloadKeys() (changed bool, err error) {
	if s.keyFile == "" {
		return false, nil
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	keyData, recipData, err := crypto.ReadKeyFiles(s.keyFile)
	if err != nil {
		return false, fmt.Errorf("filestore: %w", err)
	}
	defer clear(keyData)
	h := sha256.New()
	h.Write(keyData)
	h.Write([]byte{0})
	h.Write(recipData)
	var d [sha256.Size]byte
	h.Sum(d[:0])
	if cur := s.keys.Load(); cur != nil && cur.digest == d {
		return false, nil
	}
	parseData := keyData
	if crypto.IsEncryptedKeyFile(keyData) {
		if parseData, err = s.decryptKeyFile(keyData); err != nil {
			return false, err
		}
		defer clear(parseData)
	}
	ring, err := crypto.ParseKeyFiles(s.keyFile, parseData, recipData)
	if err != nil {
		return false, fmt.Errorf("filestore: %w", err)
	}
	if ring, err = ring.WithRecipients(s.extra...); err != nil {
		return false, fmt.Errorf("filestore: %w", err)
	}
	s.keys.Store(&keyState{ring: ring, digest: d})
	s.log.Info("sessionstore: keys loaded", "key_file", s.keyFile, "identities", ring.Len(), "primary", ring.PublicKey(0))
	return true, nil
}

// decryptKeyFile opens a passphrase-protected key file, asking for the
// passphrase the first time only. s.keyMu is held.
func (s *Store) decryptKeyFile(data []byte) ([]byte, error) {
	if !s.havePass {
		if s.askPass == nil {
			return nil, fmt.Errorf("filestore: %s: %w (use WithPassphrase)", s.keyFile, crypto.ErrPassphraseRequired)
		}
		p, err := s.askPass()
		if err != nil {
			return nil, fmt.Errorf("filestore: %s: passphrase: %w", s.keyFile, err)
		}
		s.passphrase, s.havePass = p, true
	}
	plain, err := crypto.DecryptKeyFile(data, s.passphrase)
	if err != nil {
		return nil, fmt.Errorf("filestore: %s: %w", s.keyFile, err)
	}
	return plain, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Keyring returns the keyring the Store currently uses.
func (s *Store) Keyring() *crypto.Keyring { return s.keys.Load().ring }

func (s *Store) recordPath(stem string) string { return filepath.Join(s.dir, stem+recordSuffix) }

// Get returns the session stored under authType, or an error wrapping
// ErrNotFound. The value is the caller's: changing it changes nothing
// stored. A cached value costs no I/O and, unless it has Extra, no
// allocation.
func (s *Store) Get(ctx context.Context, authType string) (AuthObject, error) {
	a, _, err := s.lookup(ctx, authType)
	return a, err
}

// lookup is Get, also returning when the record was written.
func (s *Store) lookup(ctx context.Context, authType string) (AuthObject, time.Time, error) {
	if e := s.cache.get(authType); e != nil && e.ok && e.trusted && !s.closed.Load() {
		a := e.auth
		if a.Extra != nil {
			a = a.clone()
		}
		return a, e.written, nil
	}
	if s.closed.Load() {
		return AuthObject{}, time.Time{}, fmt.Errorf("filestore: get %q: %w", authType, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return AuthObject{}, time.Time{}, err
	}
	stem, err := stemOf(authType)
	if err != nil {
		return AuthObject{}, time.Time{}, err
	}
	a, written, err := s.load(authType, stem)
	if err != nil {
		return AuthObject{}, time.Time{}, err
	}
	return a.clone(), written, nil
}

// load reads the record file of name and returns its value, from the cache
// if the file still holds the cached bytes, and caches it.
func (s *Store) load(name, stem string) (AuthObject, time.Time, error) {
	path := s.recordPath(stem)
	watching := s.watcher.active()
	before := s.events.Load()
	s.reads.Add(1)
	data, err := readRecord(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.forget(name)
			return AuthObject{}, time.Time{}, fmt.Errorf("filestore: %s: %w", path, ErrNotFound)
		}
		return AuthObject{}, time.Time{}, fmt.Errorf("filestore: %w", err)
	}
	d := sha256.Sum256(data)

	var hit *entry
	s.cache.update(name, func(e entry) entry {
		if e.ok && e.digest == d {
			// The file holds what we cached: validated without
			// decrypting. From here on the watcher vouches for it, if
			// it was watching before the read and saw no change since.
			e.trusted = watching && s.events.Load() == before
			hit = &e
		}
		return e
	})
	if hit != nil {
		s.watcher.start(s)
		return hit.auth, hit.written, nil
	}

	rec, err := s.open(data, name, path)
	if err != nil {
		return AuthObject{}, time.Time{}, err
	}
	a, err := decodeAuth(rec.Auth)
	if err != nil {
		return AuthObject{}, time.Time{}, fmt.Errorf("filestore: %s: %w", path, err)
	}
	var rollback uint64
	s.cache.update(name, func(e entry) entry {
		if rec.Seq < e.maxSeq {
			rollback = e.maxSeq
			return e
		}
		return entry{ok: true, auth: a, digest: d, seq: rec.Seq, written: rec.Written, maxSeq: rec.Seq,
			trusted: watching && s.events.Load() == before}
	})
	if rollback != 0 {
		return AuthObject{}, time.Time{}, fmt.Errorf("filestore: %s: sequence number went back from %d to %d: %w", path, rollback, rec.Seq, ErrRollback)
	}
	return a, rec.Written, nil
}

// forget drops name's cached value, keeping its highest sequence number.
func (s *Store) forget(name string) {
	s.cache.update(name, entry.forgotten)
}

// open decrypts and verifies a record. If no identity opens it, the key
// file is reloaded once and the record tried again: a rotation may just
// have happened.
func (s *Store) open(data []byte, name, path string) (*crypto.Record, error) {
	s.opens.Add(1)
	rec, _, err := s.keys.Load().ring.Open(data, name)
	if errors.Is(err, ErrWrongKey) {
		if changed, rerr := s.reloadKeys(); rerr == nil && changed {
			rec, _, err = s.keys.Load().ring.Open(data, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: %s: %w", path, err)
	}
	return rec, nil
}

func decodeAuth(data []byte) (AuthObject, error) {
	var a AuthObject
	if err := json.Unmarshal(data, &a); err != nil {
		// The JSON error could quote a token: say only what failed.
		return AuthObject{}, fmt.Errorf("auth object does not decode: %w", ErrTampered)
	}
	return a, nil
}

// readRecord reads a record file without following a symlink.
func readRecord(path string) ([]byte, error) {
	f, err := fsutil.OpenNoFollow(path)
	if err != nil {
		if errors.Is(err, fsutil.ErrSymlink) {
			return nil, fmt.Errorf("%s is a symlink, not followed: %w", path, ErrInsecurePermissions)
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", path, ErrInsecurePermissions)
	}
	if fi.Size() > maxRecordSize {
		return nil, fmt.Errorf("%s is %d bytes, larger than any record: %w", path, fi.Size(), ErrTampered)
	}
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+1))
	if _, err := buf.ReadFrom(io.LimitReader(f, maxRecordSize+1)); err != nil {
		return nil, err
	}
	if buf.Len() > maxRecordSize {
		return nil, fmt.Errorf("%s is larger than any record: %w", path, ErrTampered)
	}
	return buf.Bytes(), nil
}

// List returns the auth types stored in the directory, sorted. Files that
// are not records of this store are skipped.
func (s *Store) List(ctx context.Context) ([]string, error) {
	if err := s.checkOpen("list"); err != nil {
		return nil, err
	}
	return listDir(ctx, s.dir)
}

func listDir(ctx context.Context, dir string) ([]string, error) {
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
		if !ok || !de.Type().IsRegular() {
			continue
		}
		if name, ok := nameOf(stem); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("filestore: %s %s: %w", op, s.dir, ErrClosed)
	}
	return nil
}

// Close releases the Store. It does not wait for the watcher to shut down,
// so a short-lived process never pays for tearing down inotify. Calls after
// Close return ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.cache.reset()
	s.watcher.stop()
	return nil
}
