package protocol

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/keys"
	"github.com/sessionstore/sessionstore/internal/names"
	"github.com/sessionstore/sessionstore/internal/reccache"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// Config is what a backend's Open gives New.
type Config struct {
	Pkg          string // the backend's name, the prefix of its errors: "etcdstore"
	Namespace    string // bound into every record: the etcd prefix, the pgstore namespace
	Backend      Backend
	Keys         *keys.Keys
	Log          *slog.Logger     // required
	Now          func() time.Time // required
	MaxStaleness time.Duration    // how long a cached value is served without hearing from the backend
}

// A Store is the protocol over one Backend: a sessionstore.Store. It is
// safe for concurrent use.
type Store struct {
	pkg, ns      string
	b            Backend
	keys         *keys.Keys
	log          *slog.Logger
	now          func() time.Time
	maxStaleness time.Duration
	epoch        time.Time // the origin of mono

	bg     context.Context // ends at Close: the watch and the heartbeat
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	locks Locks // the in-process lock of each record
	cache reccache.Cache[entry]
	watch watchState

	// pending holds, per auth type, the *pendingWrite this Store is
	// committing: the feed recognises it by its bytes, not decrypting it.
	pending sync.Map
}

var _ sessionstore.Store = (*Store)(nil)

// New publishes the Store's heartbeat, then starts its change feed and
// heartbeat loop.
func New(ctx context.Context, c Config) (*Store, error) {
	s := &Store{pkg: c.Pkg, ns: c.Namespace, b: c.Backend, keys: c.Keys, log: c.Log, now: c.Now,
		maxStaleness: c.MaxStaleness, epoch: time.Now()}
	if err := s.b.Heartbeat(ctx, s.host()); err != nil {
		return nil, err
	}
	s.bg, s.stop = context.WithCancel(context.Background())
	s.wg.Go(s.watchLoop)
	s.wg.Go(s.heartbeatLoop)
	return s, nil
}

// Keyring returns the keyring the Store currently uses.
func (s *Store) Keyring() *crypto.Keyring { return s.keys.Ring() }

// mono is a monotonic clock: nanoseconds since the Store was opened.
func (s *Store) mono() int64 { return int64(time.Since(s.epoch)) }

// List returns the auth types stored, sorted.
func (s *Store) List(ctx context.Context) ([]string, error) {
	if err := s.checkOpen("list"); err != nil {
		return nil, err
	}
	return s.b.Names(ctx)
}

func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %s %s: %w", s.pkg, op, s.ns, sessionstore.ErrClosed)
	}
	return nil
}

// Close stops the change feed and heartbeat and closes the backend.
// Calls after Close return sessionstore.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.setDeadline(0) // no cached value is served from now on
	s.stop()
	s.wg.Wait()
	s.cache.Reset()
	return s.b.Close()
}

func (s *Store) host() Host {
	h, _ := os.Hostname()
	return Host{Host: h, PID: os.Getpid(), Keys: s.keys.Ring().Fingerprints(), Time: time.Now().UTC()}
}

// heartbeatLoop rereads the key file and renews the heartbeat every
// HeartbeatEvery, until Close.
func (s *Store) heartbeatLoop() {
	t := time.NewTicker(HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
		}
		if _, err := s.keys.Reload(); err != nil {
			s.log.Warn("sessionstore: rereading the key file", "err", err)
		}
		ctx, cancel := context.WithTimeout(s.bg, HeartbeatEvery)
		if err := s.b.Heartbeat(ctx, s.host()); err != nil && s.bg.Err() == nil {
			s.log.Warn("sessionstore: heartbeat", "namespace", s.ns, "err", err)
		}
		cancel()
	}
}

// Get returns the session stored under authType, or an error wrapping
// sessionstore.ErrNotFound. A cached value (no I/O; no allocation without
// Extra) is served only while the change feed is up and was heard from
// within the staleness bound.
func (s *Store) Get(ctx context.Context, authType string) (sessionstore.AuthObject, error) {
	// serving is 0 once the Store is closed: no closed check here.
	if e := s.cache.Get(authType); e != nil && e.ok && s.watch.vouches(e.gen) {
		if e.auth.Extra == nil {
			return e.auth, nil
		}
		return e.auth.Clone(), nil
	}
	return s.getSlow(ctx, authType)
}

// getSlow is Get when the cache does not serve: a function of its own, so
// that Get's hit path keeps a small frame.
func (s *Store) getSlow(ctx context.Context, authType string) (sessionstore.AuthObject, error) {
	if err := s.checkOpen("get"); err != nil {
		return sessionstore.AuthObject{}, err
	}
	if err := ctx.Err(); err != nil {
		return sessionstore.AuthObject{}, err
	}
	if _, err := names.Stem(authType); err != nil {
		return sessionstore.AuthObject{}, err
	}
	cur, err := s.read(ctx, s.watch.gen.Load(), authType)
	switch {
	case err != nil:
		return sessionstore.AuthObject{}, err
	case !cur.exists:
		return sessionstore.AuthObject{}, s.fail(authType, sessionstore.ErrNotFound)
	case cur.err != nil:
		return sessionstore.AuthObject{}, cur.err
	}
	return cur.auth.Clone(), nil
}

// current is a record as read, and its value.
type current struct {
	exists  bool
	auth    sessionstore.AuthObject // owned by the cache
	ver     int64                   // 0 if absent
	seq     uint64
	written time.Time
	err     error // the record exists but does not open
}

// read reads name's record, while generation gen is current, and caches
// its value; it decrypts only a version the cache does not hold. A record
// that does not open is reported in current.err.
func (s *Store) read(ctx context.Context, gen uint64, name string) (current, error) {
	var known int64 // before the read: see fill
	if e := s.cache.Get(name); e != nil {
		known = e.ver
	}
	raw, err := s.b.Read(ctx, name)
	if err != nil {
		return current{}, err
	}
	cur := current{exists: raw.Data != nil, ver: raw.Ver}
	if raw.Data == nil {
		s.forget(name, raw.Ver)
		return cur, nil
	}
	if e := s.cache.Get(name); e != nil && e.ok && e.ver == raw.Ver {
		// Unchanged since cached; the current generation vouches for it.
		s.fill(gen, name, e.ver, known, e.auth, e.seq, e.written)
		cur.auth, cur.seq, cur.written = e.auth, e.seq, e.written
		return cur, nil
	}
	rec, err := s.open(raw.Data, name)
	if err != nil {
		cur.err = err
		return cur, nil
	}
	cur.seq = rec.Seq
	if cur.auth, err = wire.DecodeAuth(rec.Auth); err != nil {
		cur.auth, cur.err = sessionstore.AuthObject{}, s.fail(name, err)
	} else if prev := s.fill(gen, name, raw.Ver, known, cur.auth, rec.Seq, rec.Written); prev != 0 {
		cur.auth, cur.err = sessionstore.AuthObject{}, s.fail(name, fmt.Errorf("sequence number went back from %d to %d: %w", prev, rec.Seq, sessionstore.ErrRollback))
	} else {
		cur.written = rec.Written
	}
	return cur, nil
}

// open decrypts and verifies a record. If no identity opens it, the key
// file is reloaded once and the record tried again: a rotation may just
// have happened.
func (s *Store) open(data []byte, name string) (*envelope.Record, error) {
	rec, _, err := envelope.Open(s.keys.Ring(), data, s.ns, name)
	if errors.Is(err, sessionstore.ErrWrongKey) {
		if changed, rerr := s.keys.Reload(); rerr == nil && changed {
			rec, _, err = envelope.Open(s.keys.Ring(), data, s.ns, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w%s", s.fail(name, err), s.keys.WrongKeyHint(err))
	}
	return rec, nil
}

// fail is err about name's record.
func (s *Store) fail(name string, err error) error {
	return fmt.Errorf("%s: %s: %w", s.pkg, s.b.Where(name), err)
}
