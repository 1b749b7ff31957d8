package etcdstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/names"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// backend is etcd's storage primitives for one Store (protocol.Backend).
type backend struct {
	client *clientv3.Client
	prefix string
	ttl    int // lease TTL, seconds
	log    *slog.Logger
	hooks  testHooks
	bg     context.Context // ends at Close: the lease's keep-alive
	stop   context.CancelFunc

	mu   sync.Mutex // guards the fields below
	sess *concurrency.Session
	host *protocol.Host       // the last heartbeat, put on every new lease
	beat *concurrency.Session // the session host is on
}

// releaseTimeout bounds the calls that release a lock or a lease, which
// run whatever the caller's context.
const (
	releaseTimeout = 5 * time.Second
	commitAttempts = 5  // tries of a write whose outcome etcd left unknown
	maxHistory     = 64 // versions AppliedSince reads back
)

func newBackend(client *clientv3.Client, prefix string, ttl time.Duration, log *slog.Logger) *backend {
	b := &backend{client: client, prefix: prefix, ttl: int((ttl + time.Second - 1) / time.Second), log: log}
	b.bg, b.stop = context.WithCancel(context.Background())
	return b
}

// Where is name's record key; name is valid.
func (b *backend) Where(name string) string {
	stem, _ := names.Stem(name)
	return b.prefix + "/records/" + stem
}

func (b *backend) Read(ctx context.Context, name string) (protocol.Raw, error) {
	key := b.Where(name)
	resp, err := b.client.Get(ctx, key)
	if err != nil {
		return protocol.Raw{}, fmt.Errorf("etcdstore: read %s: %w", key, ctxErr(ctx, err))
	}
	if len(resp.Kvs) == 0 {
		return protocol.Raw{Name: name}, nil
	}
	return protocol.Raw{Name: name, Data: resp.Kvs[0].Value, Ver: resp.Kvs[0].ModRevision}, nil
}

func (b *backend) ReadAll(ctx context.Context) ([]protocol.Raw, error) {
	return b.scan(ctx)
}

func (b *backend) Names(ctx context.Context) ([]string, error) {
	raws, err := b.scan(ctx, clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	list := make([]string, len(raws))
	for i, r := range raws {
		list[i] = r.Name
	}
	slices.Sort(list) // etcd sorts the keys, whose stems escape the names
	return list, nil
}

// scan reads the records under the prefix, skipping keys that are not one.
func (b *backend) scan(ctx context.Context, opts ...clientv3.OpOption) ([]protocol.Raw, error) {
	pfx := b.prefix + "/records/"
	resp, err := b.client.Get(ctx, pfx, append(opts, clientv3.WithPrefix())...)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: read %s: %w", pfx, ctxErr(ctx, err))
	}
	raws := make([]protocol.Raw, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if name, ok := names.Name(strings.TrimPrefix(string(kv.Key), pfx)); ok {
			raws = append(raws, protocol.Raw{Name: name, Data: kv.Value, Ver: kv.ModRevision})
		}
	}
	return raws, nil
}

// session returns the Store's lease session, starting a new one, with the
// heartbeat, if there is none or its lease ended.
func (b *backend) session(ctx context.Context) (*concurrency.Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sess != nil {
		select {
		case <-b.sess.Done():
			b.log.Warn("sessionstore: etcd lease ended; starting a new one", "prefix", b.prefix, "lease", fmt.Sprintf("%x", b.sess.Lease()))
			b.sess = nil
		default:
			return b.sess, nil
		}
	}
	if b.bg.Err() != nil {
		return nil, fmt.Errorf("etcdstore: %s: %w", b.prefix, sessionstore.ErrClosed)
	}
	lease, err := b.client.Grant(ctx, int64(b.ttl))
	if err != nil {
		return nil, fmt.Errorf("etcdstore: %s: granting the lock lease: %w", b.prefix, ctxErr(ctx, err))
	}
	// Kept alive until Close, whatever the context of this call.
	sess, err := concurrency.NewSession(b.client, concurrency.WithLease(lease.ID),
		concurrency.WithTTL(b.ttl), concurrency.WithContext(b.bg))
	if err != nil {
		revoke(b.client, lease.ID)
		return nil, fmt.Errorf("etcdstore: %s: keeping the lock lease alive: %w", b.prefix, ctxErr(ctx, err))
	}
	if b.host != nil {
		if err := b.putHeartbeat(ctx, sess, *b.host); err != nil {
			sess.Orphan()
			revoke(b.client, sess.Lease())
			return nil, err
		}
		b.beat = sess
	}
	b.sess = sess
	return sess, nil
}

// dropSession revokes sess's lease, releasing its locks even where
// deleting them failed; the next write starts a new session.
func (b *backend) dropSession(sess *concurrency.Session) {
	b.mu.Lock()
	if b.sess == sess {
		b.sess = nil
	}
	b.mu.Unlock()
	sess.Orphan()
	revoke(b.client, sess.Lease())
}

func revoke(client *clientv3.Client, id clientv3.LeaseID) {
	if client.Ctx().Err() != nil {
		return // the client is closed: the lease expires after its TTL
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	client.Revoke(ctx, id)
}

// Heartbeat starts a new lease if it ended, and puts h on the lease
// unless it is there.
func (b *backend) Heartbeat(ctx context.Context, h protocol.Host) error {
	b.mu.Lock()
	if b.host == nil || !slices.Equal(b.host.Keys, h.Keys) {
		b.host, b.beat = &h, nil
	}
	b.mu.Unlock()
	sess, err := b.session(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.beat == sess {
		return nil
	}
	if err := b.putHeartbeat(ctx, sess, h); err != nil {
		return err
	}
	b.beat = sess
	return nil
}

func (b *backend) putHeartbeat(ctx context.Context, sess *concurrency.Session, h protocol.Host) error {
	data, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("etcdstore: heartbeat: %w", err)
	}
	key := b.prefix + "/hosts/" + fmt.Sprintf("%016x", int64(sess.Lease()))
	if _, err := b.client.Put(ctx, key, string(data), clientv3.WithLease(sess.Lease())); err != nil {
		return fmt.Errorf("etcdstore: heartbeat %s: %w", key, ctxErr(ctx, err))
	}
	return nil
}

// Close revokes the lease, removing the heartbeat and any lock.
func (b *backend) Close() error {
	b.stop()
	b.mu.Lock()
	sess := b.sess
	b.sess = nil // no write takes the lease being revoked
	b.mu.Unlock()
	if sess != nil {
		b.dropSession(sess)
	}
	return nil
}

type lock struct {
	b        *backend
	sess     *concurrency.Session
	m        *concurrency.Mutex
	key      string // the record's
	released bool   // a committed write's transaction deleted m's key
}

func (b *backend) Lock(ctx context.Context, name string) (protocol.Lock, error) {
	stem, _ := names.Stem(name) // no "/": no record's lock prefix contains another's
	pfx := b.prefix + "/locks/" + stem
	for {
		sess, err := b.session(ctx)
		if err != nil {
			return nil, err
		}
		m := concurrency.NewMutex(sess, pfx)
		err = m.Lock(ctx)
		if err == nil {
			return &lock{b: b, sess: sess, m: m, key: b.Where(name)}, nil
		}
		b.abandon(sess, m)
		if ctx.Err() == nil && b.leaseEnded(sess, err) {
			continue // a new lease, and wait again
		}
		return nil, fmt.Errorf("etcdstore: lock %s: %w", pfx, ctxErr(ctx, err))
	}
}

// leaseEnded reports whether err, from a lock attempt on sess, means that
// sess's lease is gone.
func (b *backend) leaseEnded(sess *concurrency.Session, err error) bool {
	if errors.Is(err, concurrency.ErrSessionExpired) || errors.Is(err, rpctypes.ErrLeaseNotFound) {
		b.dropSession(sess)
		return true
	}
	select {
	case <-sess.Done():
		return true
	default:
		return false
	}
}

// abandon removes the waiter key a failed Lock may have left, or else
// drops the session, so that the key goes with its lease.
func (b *backend) abandon(sess *concurrency.Session, m *concurrency.Mutex) {
	key := m.Key()
	if key == "" || key == "\x00" {
		return // never written, or already removed
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if _, err := b.client.Delete(ctx, key); err != nil {
		b.log.Warn("sessionstore: could not remove a lock waiter; ending the lease instead", "key", key, "err", err)
		b.dropSession(sess)
	}
}

// Unlock releases the Mutex unless a committed write did; if etcd cannot
// be told, the session is dropped.
func (l *lock) Unlock() {
	if l.released {
		return
	}
	l.released = true
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := l.m.Unlock(ctx); err != nil && !errors.Is(err, concurrency.ErrLockReleased) {
		l.b.log.Warn("sessionstore: could not release a record lock; ending the lease instead", "key", l.m.Key(), "err", err)
		l.b.dropSession(l.sess)
	}
}

// Commit writes in one transaction fenced on the record's revision and
// on the Mutex, which also deletes the Mutex's key. An error that leaves
// the outcome unknown is retried, fenced as before: a failed fence
// answers with the record and the lock key, which tell whether an earlier
// attempt was applied.
func (l *lock) Commit(ctx context.Context, ver int64, data []byte) (int64, error) {
	key, m := l.key, l.m
	op := clientv3.OpDelete(key)
	if data != nil {
		op = clientv3.OpPut(key, string(data))
	}
	backoff := 50 * time.Millisecond
	var lost error // why the previous attempt's answer was lost
	for attempt := 1; ; attempt++ {
		resp, err := l.b.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", ver), m.IsOwner()).
			Then(op, clientv3.OpDelete(m.Key())).
			Else(clientv3.OpGet(key), clientv3.OpGet(m.Key())).
			Commit()
		if err == nil {
			if resp.Succeeded {
				l.released = true
				return resp.Header.Revision, nil
			}
			rec := resp.Responses[0].GetResponseRange().Kvs
			lockGone := len(resp.Responses[1].GetResponseRange().Kvs) == 0
			if attempt > 1 {
				if data != nil && len(rec) == 1 && bytes.Equal(rec[0].Value, data) {
					l.released = true
					return rec[0].ModRevision, nil // an earlier attempt was applied
				}
				if data != nil && lockGone {
					// The lock is gone: an earlier attempt may have been
					// applied, releasing it, and another host may have
					// written since. The record's history tells.
					rev, applied, err := l.AppliedSince(ctx, "", data)
					if err != nil {
						return 0, protocol.Ambiguous(lost)
					}
					if applied {
						l.released = true
						return rev, nil
					}
				}
				if data == nil && len(rec) == 0 {
					l.released = lockGone
					return resp.Header.Revision, nil // deleted
				}
			}
			if lockGone {
				return 0, fmt.Errorf("etcdstore: writing %s: the lease of lock %s ended; not applied: %w", key, m.Key(), sessionstore.ErrLockLost)
			}
			return 0, fmt.Errorf("etcdstore: writing %s: the record changed under lock %s (written without the lock?); not applied", key, m.Key())
		}
		lost = ctxErr(ctx, err)
		if ctx.Err() != nil || attempt == commitAttempts {
			return 0, protocol.Ambiguous(lost)
		}
		l.b.log.Warn("sessionstore: etcd write outcome unknown; trying again, fenced", "key", key, "attempt", attempt, "err", lost)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// AppliedSince walks the record's history back to the lock's revision
// for data (whose random age header no other write has). Its errors do not
// name the record: its callers do.
func (l *lock) AppliedSince(ctx context.Context, _ string, data []byte) (int64, bool, error) {
	var lockRev int64
	if h := l.m.Header(); h != nil {
		lockRev = h.Revision
	}
	if lockRev == 0 {
		return 0, false, nil
	}
	return appliedSince(ctx, l.b.client, l.key, data, lockRev)
}

func appliedSince(ctx context.Context, client *clientv3.Client, key string, data []byte, lockRev int64) (int64, bool, error) {
	var opts []clientv3.OpOption
	for range maxHistory {
		resp, err := client.Get(ctx, key, opts...)
		if err != nil {
			return 0, false, fmt.Errorf("reading the record's history: %w", err)
		}
		if len(resp.Kvs) == 0 {
			return 0, false, errors.New("the record was deleted since the write")
		}
		kv := resp.Kvs[0]
		switch {
		case kv.ModRevision <= lockRev:
			return 0, false, nil // back before the lock: never written
		case bytes.Equal(kv.Value, data):
			return kv.ModRevision, true, nil
		}
		opts = []clientv3.OpOption{clientv3.WithRev(kv.ModRevision - 1)}
	}
	return 0, false, fmt.Errorf("more than %d writes to the record since the lock", maxHistory)
}

// ctxErr wraps ctx's error if ctx is done: etcd may report it as a gRPC
// status.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}
