// Package memstore is an in-memory sessionstore.Store for the tests of
// programs that use sessionstore: no encryption, no persistence, nothing on
// disk. It keeps the rules every backend keeps (package sessionstoretest
// checks them), so code tested against it behaves the same against
// filestore or etcdstore.
//
// Two handles over the same sessions, as two processes would hold over one
// directory, come from New and Store.Handle: they share values and record
// locks, and each has its own Close.
package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/decide"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// A Store keeps sessions in memory. It is safe for concurrent use.
type Store struct {
	d      *data
	closed atomic.Bool
}

var _ sessionstore.Store = (*Store)(nil)

// data is what every handle of one New shares.
type data struct {
	mu       sync.Mutex                         // guards sessions
	sessions map[string]sessionstore.AuthObject // owned by data: copies go in and out
	locks    protocol.Locks                     // held by Update, Set and Delete
}

// New returns an empty Store.
func New() *Store {
	return &Store{d: &data{sessions: make(map[string]sessionstore.AuthObject)}}
}

// Handle returns another Store over the same sessions, as another process
// would open over the same directory: writes through one are seen by the
// other, Update is exclusive across both, and closing one leaves the other
// open.
func (s *Store) Handle() *Store { return &Store{d: s.d} }

func (s *Store) check(op, authType string) error {
	if s.closed.Load() {
		return fmt.Errorf("memstore: %s %q: %w", op, authType, sessionstore.ErrClosed)
	}
	return sessionstore.ValidateAuthType(authType)
}

// Get returns a copy of the session stored under authType.
func (s *Store) Get(ctx context.Context, authType string) (sessionstore.AuthObject, error) {
	if err := s.check("get", authType); err != nil {
		return sessionstore.AuthObject{}, err
	}
	if err := ctx.Err(); err != nil {
		return sessionstore.AuthObject{}, err
	}
	s.d.mu.Lock()
	a, ok := s.d.sessions[authType]
	s.d.mu.Unlock()
	if !ok {
		return sessionstore.AuthObject{}, fmt.Errorf("memstore: %q: %w", authType, sessionstore.ErrNotFound)
	}
	return a.Clone(), nil
}

// Set stores a copy of auth under authType.
func (s *Store) Set(ctx context.Context, authType string, auth sessionstore.AuthObject) error {
	_, err := s.write(ctx, "set", authType, decide.Set(auth))
	return err
}

// Update runs fn under authType's lock, shared by every handle.
func (s *Store) Update(ctx context.Context, authType string,
	fn func(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error)) (sessionstore.AuthObject, error) {
	return s.write(ctx, "update", authType, decide.Update(fn))
}

// Delete removes the session stored under authType.
func (s *Store) Delete(ctx context.Context, authType string) error {
	_, err := s.write(ctx, "delete", authType, decide.Delete())
	return err
}

// List returns the stored auth types, sorted.
func (s *Store) List(ctx context.Context) ([]string, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("memstore: list: %w", sessionstore.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return slices.Sorted(maps.Keys(s.d.sessions)), nil
}

// Close closes this handle; later calls on it return
// sessionstore.ErrClosed. Other handles stay open.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// write decides under authType's lock, as every backend does.
func (s *Store) write(ctx context.Context, op, authType string, decideFn decide.Func) (sessionstore.AuthObject, error) {
	if err := s.check(op, authType); err != nil {
		return sessionstore.AuthObject{}, err
	}
	unlock, err := s.d.locks.Lock(ctx, authType)
	if err != nil {
		return sessionstore.AuthObject{}, fmt.Errorf("memstore: lock %q: %w", authType, err)
	}
	defer unlock()
	s.d.mu.Lock()
	cur, exists := s.d.sessions[authType]
	s.d.mu.Unlock()
	next, act, err := decideFn(decide.Current{Exists: exists, Auth: cur})
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	switch act {
	case decide.Keep:
		return cur.Clone(), nil
	case decide.Remove:
		delete(s.d.sessions, authType)
		return sessionstore.AuthObject{}, nil
	}
	s.d.sessions[authType] = next.Clone()
	return next.Clone(), nil
}
