package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sessionstore/sessionstore"
)

// Remove deletes the session stored under authType under prefix, without a
// key and without a Store: deleting needs write access to the prefix, not
// the key that sealed the record, so whoever may write the prefix can
// remove a record sealed to a lost or foreign key, or one that does not
// open at all. It takes the record's lock, as Store.Delete does, waiting
// for it until ctx is done, and deletes the record in a transaction fenced
// on that lock and on the record's revision, which releases the lock too.
// The lock lives on a lease of Remove's own (DefaultLockTTL), revoked
// before it returns; Remove writes no heartbeat, so it never appears among
// Hosts.
//
// Unlike Store.Delete, Remove reports a missing record: an error wrapping
// sessionstore.ErrNotFound. authType is escaped into a key as every Store
// escapes it, so no name reaches outside <prefix>/records/; an invalid one
// is an error wrapping sessionstore.ErrInvalidAuthType.
func Remove(ctx context.Context, client *clientv3.Client, prefix, authType string) error {
	p := strings.TrimRight(prefix, "/")
	switch {
	case client == nil:
		return fmt.Errorf("etcdstore: remove %q: no etcd client", prefix)
	case p == "":
		return errors.New("etcdstore: remove: the prefix is empty")
	}
	stem, err := stemOf(authType)
	if err != nil {
		return err
	}
	key := recordsPrefix(p) + stem
	notFound := func() error { return fmt.Errorf("etcdstore: remove %s: %w", key, sessionstore.ErrNotFound) }
	// A name that is not stored costs no lease.
	resp, err := client.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("etcdstore: read %s: %w", key, ctxErr(ctx, err))
	}
	if resp.Count == 0 {
		return notFound()
	}

	ttl := int((DefaultLockTTL + time.Second - 1) / time.Second)
	lease, err := client.Grant(ctx, int64(ttl))
	if err != nil {
		return fmt.Errorf("etcdstore: remove %s: granting the lock lease: %w", key, ctxErr(ctx, err))
	}
	defer revoke(client, lease.ID) // the lock, and a waiter's key, go with it
	sess, err := concurrency.NewSession(client, concurrency.WithLease(lease.ID), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("etcdstore: remove %s: keeping the lock lease alive: %w", key, ctxErr(ctx, err))
	}
	defer sess.Orphan()
	pfx := locksPrefix(p) + stem
	m := concurrency.NewMutex(sess, pfx)
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("etcdstore: lock %s: %w", pfx, ctxErr(ctx, err))
	}

	cur, err := client.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("etcdstore: read %s: %w", key, ctxErr(ctx, err))
	}
	if len(cur.Kvs) == 0 {
		return notFound() // deleted by another host meanwhile
	}
	txn, err := client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", cur.Kvs[0].ModRevision), m.IsOwner()).
		Then(clientv3.OpDelete(key), clientv3.OpDelete(m.Key())).
		Else(clientv3.OpGet(m.Key())).
		Commit()
	switch {
	case err != nil:
		// etcd's answer was lost: the record itself tells whether the
		// delete was applied (read with a context of its own, since the
		// caller's may be done).
		err = ctxErr(ctx, err)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		after, rerr := client.Get(rctx, key, clientv3.WithCountOnly())
		switch {
		case rerr != nil:
			return fmt.Errorf("etcdstore: remove %s: %w; whether it was removed is unknown (%v)", key, err, rerr)
		case after.Count == 0:
			return nil
		default:
			return fmt.Errorf("etcdstore: remove %s: %w; not removed", key, err)
		}
	case txn.Succeeded:
		return nil
	case len(txn.Responses[0].GetResponseRange().Kvs) == 0:
		return fmt.Errorf("etcdstore: remove %s: the lease of lock %s ended; not removed: %w", key, m.Key(), sessionstore.ErrLockLost)
	default:
		return fmt.Errorf("etcdstore: remove %s: the record changed under lock %s (written without the lock?); not removed", key, m.Key())
	}
}
