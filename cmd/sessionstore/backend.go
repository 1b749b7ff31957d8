package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
)

// A backend is where the sessions are kept: a store directory (-dir), or a
// fleet's store: an etcd prefix (-etcd) or a PostgreSQL namespace
// (-postgres). The commands see only this interface.
type backend interface {
	// List reports every record, in name order, including those that do
	// not open (their record has Err set): it never stops at a bad one.
	List(ctx context.Context) ([]record, error)
	// Get reports one record; errNoSession if there is none. A record
	// that does not open is returned with Err set, not as an error.
	Get(ctx context.Context, name string) (record, error)
	// Delete removes a record, whether it opens or not, without the key,
	// under the record's lock; errNoSession if there is none.
	Delete(ctx context.Context, name string) error
	// Put stores a session under name. Unless replace, an existing record
	// (even one that does not open) is left alone: errExists, or the
	// error that says why it does not open.
	Put(ctx context.Context, name string, a sessionstore.AuthObject, replace bool) error
	// TokenStore is the Store token reads and refreshes through. Reading
	// a valid token from it writes nothing.
	TokenStore() (sessionstore.Store, error)
	// notFound is the error for a name not stored.
	notFound(name string) error
	Close() error
}

// A record is what a backend knows of one stored session. Auth holds the
// tokens: only show -reveal prints them.
type record struct {
	Name      string
	Key       int    // index of the identity that opens it: 0 primary, -1 none
	PublicKey string // that identity's recipient
	Seq       uint64
	Written   time.Time
	Auth      sessionstore.AuthObject // zero when Err is set
	Err       error                   // the record does not open
}

var (
	errNoSession = errors.New("no session")
	errExists    = errors.New("a session is already stored under this name")
)

// dirBackend is a store directory, read and written through filestore.
type dirBackend struct {
	dir, keyFile string // keyFile is "" for rm, which needs no key
	passphrase   func() (string, error)
	identity     string           // -identity, for a key file sealed to age recipients
	ring         *crypto.Keyring  // ls, show: loaded on first use
	store        *filestore.Store // import, token: opened on first use
}

// openDir returns the backend of dir. Unless create, dir must exist:
// reading or deleting from a mistyped directory is an error, not an
// empty store.
func openDir(dir, keyFile string, passphrase func() (string, error), identity string, create bool) (*dirBackend, error) {
	if !create {
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("store directory %s: %w", strconv.Quote(dir), pathErrCause(err))
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("store directory %s is not a directory", strconv.Quote(dir))
		}
	}
	b := &dirBackend{dir: dir, keyFile: keyFile, passphrase: passphrase, identity: identity}
	if create {
		if _, err := b.open(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *dirBackend) open() (*filestore.Store, error) {
	if b.store != nil {
		return b.store, nil
	}
	opts := []filestore.Option{filestore.WithKeyFile(b.keyFile), filestore.WithoutWatcher(), filestore.WithKeyIdentity(b.identity)}
	if b.passphrase != nil {
		opts = append(opts, filestore.WithPassphrase(b.passphrase))
	}
	s, err := filestore.Open(b.dir, opts...)
	if err != nil {
		return nil, err
	}
	b.store = s
	return s, nil
}

func (b *dirBackend) Close() error {
	if b.store == nil {
		return nil
	}
	return b.store.Close()
}

func (b *dirBackend) List(ctx context.Context) ([]record, error) {
	ring, err := b.keyring()
	if err != nil {
		return nil, err
	}
	return recordsOf(filestore.ReadRecords(ctx, b.dir, ring))
}

func (b *dirBackend) Get(ctx context.Context, name string) (record, error) {
	ring, err := b.keyring()
	if err != nil {
		return record{}, err
	}
	r, err := filestore.ReadRecord(ctx, b.dir, ring, name)
	return oneRecord(r, err, b.notFound(name))
}

// keyring loads the key file, once.
func (b *dirBackend) keyring() (*crypto.Keyring, error) {
	if b.ring == nil {
		ring, err := crypto.LoadKeyringWithIdentity(b.keyFile, b.passphrase, crypto.KeyIdentity{File: b.identity})
		if err != nil {
			return nil, err
		}
		b.ring = ring
	}
	return b.ring, nil
}

func (b *dirBackend) notFound(name string) error {
	dir, err := filepath.Abs(b.dir)
	if err != nil {
		dir = b.dir
	}
	return fmt.Errorf("%w %s in %s", errNoSession, strconv.Quote(name), strconv.Quote(dir))
}

func (b *dirBackend) Delete(ctx context.Context, name string) error {
	err := filestore.Remove(ctx, b.dir, name)
	if errors.Is(err, sessionstore.ErrNotFound) {
		return b.notFound(name)
	}
	return err
}

func (b *dirBackend) Put(ctx context.Context, name string, a sessionstore.AuthObject, replace bool) error {
	s, err := b.open()
	if err != nil {
		return err
	}
	return put(ctx, s, name, a, replace)
}

// put is Put on a Store: unless replace, it writes only where no record
// is (else errExists), under the record's lock.
func put(ctx context.Context, s sessionstore.Store, name string, a sessionstore.AuthObject, replace bool) error {
	if err := sessionstore.ValidateAuthType(name); err != nil {
		return err
	}
	if replace {
		return s.Set(ctx, name, a)
	}
	_, err := s.Update(ctx, name, func(_ sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error) {
		if exists {
			return sessionstore.AuthObject{}, errExists
		}
		return a, nil
	})
	return err
}

// pathErrCause returns what a *fs.PathError wraps (its message holds the
// path raw; the caller names the path, quoted), else err.
func pathErrCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
