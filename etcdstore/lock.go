package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sessionstore/sessionstore"
)

// releaseTimeout bounds the etcd calls that release a lock or a lease,
// which run whatever the caller's context.
const releaseTimeout = 5 * time.Second

// A session is the Store's lease, kept alive by the client: the Store's
// record locks and its heartbeat live and die with it. One Store has one
// session at a time; when its lease ends (the host stalled past the TTL,
// etcd lost it), the next write starts another.
type session struct {
	*concurrency.Session

	// released holds the Mutexes (*concurrency.Mutex) whose key a
	// committed write's transaction deleted: unlocking them costs nothing.
	released sync.Map
}

// session returns the Store's live session, starting a new one (lease and
// heartbeat) if there is none or its lease ended.
func (s *Store) session(ctx context.Context) (*session, error) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if s.sess != nil {
		select {
		case <-s.sess.Done():
			s.log.Warn("sessionstore: etcd lease ended; starting a new one", "prefix", s.prefix, "lease", fmt.Sprintf("%x", s.sess.Lease()))
			s.sess = nil
		default:
			return s.sess, nil
		}
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("etcdstore: %s: %w", s.prefix, sessionstore.ErrClosed)
	}
	lease, err := s.client.Grant(ctx, int64(s.ttl))
	if err != nil {
		return nil, fmt.Errorf("etcdstore: %s: granting the lock lease: %w", s.prefix, ctxErr(ctx, err))
	}
	// The session's context is the Store's: it keeps the lease alive until
	// Close, whatever the context of the call that started it.
	cs, err := concurrency.NewSession(s.client, concurrency.WithLease(lease.ID),
		concurrency.WithTTL(s.ttl), concurrency.WithContext(s.bg))
	if err != nil {
		revoke(s.client, lease.ID)
		return nil, fmt.Errorf("etcdstore: %s: keeping the lock lease alive: %w", s.prefix, ctxErr(ctx, err))
	}
	sess := &session{Session: cs}
	if err := s.putHeartbeat(ctx, sess); err != nil {
		sess.end(s.client)
		return nil, err
	}
	s.sess = sess
	s.sessions.Add(1)
	return sess, nil
}

// dropSession ends sess if it is still the Store's session: its lease is
// revoked, so the locks it holds are released even where deleting them
// failed, and the next write starts a new session.
func (s *Store) dropSession(sess *session) {
	s.sessMu.Lock()
	if s.sess == sess {
		s.sess = nil
	}
	s.sessMu.Unlock()
	sess.end(s.client)
}

// end stops keeping the lease alive and revokes it, waiting at most
// releaseTimeout; an unrevoked lease expires after its TTL anyway.
func (sess *session) end(client *clientv3.Client) {
	sess.Orphan()
	revoke(client, sess.Lease())
}

func revoke(client *clientv3.Client, id clientv3.LeaseID) {
	if client.Ctx().Err() != nil {
		return // the client is closed: the lease expires after its TTL
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	client.Revoke(ctx, id)
}

// lock takes stem's record lock: first the in-process lock of the name
// (two Mutexes on one session would both "acquire"), then the etcd
// concurrency.Mutex under <prefix>/locks/<stem>/ on the Store's lease. It
// waits until ctx is done. unlock releases both.
func (s *Store) lock(ctx context.Context, stem string) (m *concurrency.Mutex, sess *session, unlock func(), err error) {
	pfx := s.lockKey(stem)
	unlockName, err := s.names.lock(ctx, stem)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("etcdstore: lock %s: %w", pfx, err)
	}
	for {
		sess, err := s.session(ctx)
		if err != nil {
			unlockName()
			return nil, nil, nil, err
		}
		m := concurrency.NewMutex(sess.Session, pfx)
		err = s.acquire(ctx, m, pfx)
		if err == nil {
			var once sync.Once
			s.locksHeld.Add(1)
			return m, sess, func() {
				once.Do(func() {
					s.locksHeld.Add(-1)
					if !sess.releasedBy(m) {
						s.unlock(sess, m)
					}
					unlockName()
				})
			}, nil
		}
		s.abandon(sess, m)
		if ctx.Err() == nil && s.leaseEnded(sess, err) {
			continue // a new lease, and wait again
		}
		unlockName()
		return nil, nil, nil, fmt.Errorf("etcdstore: lock %s: %w", pfx, ctxErr(ctx, err))
	}
}

// lockCurrentKeys takes stem's record lock with the keyring loaded from the
// key file as it stands under that lock: a writer never seals to a retired
// key. Loading a changed key file can be heavy (scrypt, for a
// passphrase-protected one), so it happens with no lock held: the lock is
// released, the keys reloaded, and the lock taken again. A reload is
// published in the Store's heartbeat.
func (s *Store) lockCurrentKeys(ctx context.Context, stem string) (m *concurrency.Mutex, sess *session, unlock func(), err error) {
	reloaded := false
	for attempt := 0; ; attempt++ {
		m, sess, unlock, err := s.lock(ctx, stem)
		if err != nil {
			return nil, nil, nil, err
		}
		changed, err := s.keys.Changed()
		if err != nil {
			unlock()
			return nil, nil, nil, err
		}
		if changed && attempt >= 3 {
			// The key file keeps changing: load it under the lock rather
			// than starve.
			if _, err := s.keys.Reload(); err != nil {
				unlock()
				return nil, nil, nil, err
			}
			changed, reloaded = false, true
		}
		if !changed {
			if reloaded {
				s.putHeartbeat(ctx, sess)
			}
			return m, sess, unlock, nil
		}
		unlock()
		if _, err := s.keys.Reload(); err != nil {
			return nil, nil, nil, err
		}
		reloaded = true
	}
}

// acquire takes m, waiting until ctx is done. It does not use m.Lock,
// whose wait for the previous holder watches from a past revision, which
// etcd serves only at its next sync of lagging watchers (every 100 ms).
// Instead it tries m, and while another holds it, watches the holder's key
// from the next revision (a synced watch, told of the deletion at once)
// and tries again.
func (s *Store) acquire(ctx context.Context, m *concurrency.Mutex, pfx string) error {
	for {
		err := m.TryLock(ctx)
		if !errors.Is(err, concurrency.ErrLocked) {
			return err
		}
		owner, err := s.client.Get(ctx, pfx+"/", clientv3.WithFirstCreate()...)
		if err != nil {
			return err
		}
		if len(owner.Kvs) == 0 {
			continue // released meanwhile
		}
		if err := waitDelete(ctx, s.client, string(owner.Kvs[0].Key), owner.Header.Revision+1); err != nil {
			return err
		}
	}
}

// waitDelete waits until key is deleted at revision rev or later.
func waitDelete(ctx context.Context, client *clientv3.Client, key string, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range client.Watch(wctx, key, clientv3.WithRev(rev), clientv3.WithFilterPut()) {
		if err := wr.Err(); err != nil {
			return err
		}
		if len(wr.Events) > 0 {
			return nil
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("watch of the lock holder ended")
}

// leaseEnded reports whether err, from a lock attempt on sess, means that
// sess's lease is gone (and a new session may succeed).
func (s *Store) leaseEnded(sess *session, err error) bool {
	if errors.Is(err, concurrency.ErrSessionExpired) || errors.Is(err, rpctypes.ErrLeaseNotFound) {
		s.dropSession(sess)
		return true
	}
	select {
	case <-sess.Done():
		return true
	default:
		return false
	}
}

// abandon removes m's waiter key after a failed Lock, which may have left
// it in place (an error after the key was written). If that fails too, the
// session is dropped, so the key goes with its lease.
func (s *Store) abandon(sess *session, m *concurrency.Mutex) {
	key := m.Key()
	if key == "" || key == "\x00" {
		return // never written, or already removed
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if _, err := s.client.Delete(ctx, key); err != nil {
		s.log.Warn("sessionstore: could not remove a lock waiter; ending the lease instead", "key", key, "err", err)
		s.dropSession(sess)
	}
}

// unlock releases m. If etcd cannot be told, the session is dropped: its
// lease ends, and the lock with it, within the TTL.
// releasedBy reports whether a committed write already deleted m's key
// (the write's transaction releases the lock in the same round trip), and
// forgets it.
func (sess *session) releasedBy(m *concurrency.Mutex) bool {
	_, ok := sess.released.LoadAndDelete(m)
	return ok
}

func (s *Store) unlock(sess *session, m *concurrency.Mutex) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := m.Unlock(ctx); err != nil && !errors.Is(err, concurrency.ErrLockReleased) {
		s.log.Warn("sessionstore: could not release a record lock; ending the lease instead", "key", m.Key(), "err", err)
		s.dropSession(sess)
	}
}

// ctxErr returns ctx's error if ctx is done (the etcd client may report a
// deadline as a gRPC status), else err.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// nameLocks are the in-process locks of record names, honouring contexts.
// An entry lives while someone holds or waits for it.
type nameLocks struct {
	mu sync.Mutex // guards m
	m  map[string]*nameLock
}

type nameLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters; guarded by nameLocks.mu
}

func (l *nameLocks) lock(ctx context.Context, name string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*nameLock)
	}
	nl := l.m[name]
	if nl == nil {
		nl = &nameLock{ch: make(chan struct{}, 1)}
		l.m[name] = nl
	}
	nl.refs++
	l.mu.Unlock()
	select {
	case nl.ch <- struct{}{}:
		return func() {
			<-nl.ch
			l.release(name, nl)
		}, nil
	case <-ctx.Done():
		l.release(name, nl)
		return nil, ctx.Err()
	}
}

func (l *nameLocks) release(name string, nl *nameLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if nl.refs--; nl.refs == 0 {
		delete(l.m, name)
	}
}
