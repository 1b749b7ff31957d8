package etcdstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/names"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// Remove deletes the session stored under authType under prefix, without a
// key and without a Store, so that whoever may write the prefix can remove
// a record sealed to a lost or foreign key, or one that does not open. It
// takes the record's lock as Store.Delete does, waiting for it until ctx
// is done, on a lease of its own (DefaultLockTTL) that it revokes before
// it returns; it writes no heartbeat, so it never appears among Hosts.
//
// Unlike Store.Delete, Remove reports a missing record: an error wrapping
// sessionstore.ErrNotFound. An invalid authType is an error wrapping
// sessionstore.ErrInvalidAuthType; no name reaches outside
// <prefix>/records/.
func Remove(ctx context.Context, client *clientv3.Client, prefix, authType string) error {
	prefix, err := cleanPrefix("remove", client, prefix)
	if err != nil {
		return err
	}
	if _, err := names.Stem(authType); err != nil {
		return err
	}
	b := newBackend(client, prefix, DefaultLockTTL, slog.New(slog.DiscardHandler))
	defer b.Close() // revokes the lease: the lock, and a waiter's key, go with it
	key := b.Where(authType)
	notFound := fmt.Errorf("etcdstore: remove %s: %w", key, sessionstore.ErrNotFound)
	// A name that is not stored costs no lease.
	if raw, err := b.Read(ctx, authType); err != nil || raw.Data == nil {
		return cmp.Or(err, notFound)
	}
	l, err := b.Lock(ctx, authType)
	if err != nil {
		return err
	}
	defer l.Unlock()
	raw, err := b.Read(ctx, authType)
	if err != nil || raw.Data == nil {
		return cmp.Or(err, notFound) // deleted by another host meanwhile
	}
	_, err = l.Commit(ctx, raw.Ver, nil)
	if errors.Is(err, protocol.ErrAmbiguous) {
		// etcd's answer was lost: the record tells whether it is gone
		// (read with a context of its own, since the caller's may be done).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		switch after, rerr := b.Read(rctx, authType); {
		case rerr != nil:
			return fmt.Errorf("etcdstore: remove %s: %w; whether it was removed is unknown (%v)", key, err, rerr)
		case after.Data == nil:
			return nil
		default:
			return fmt.Errorf("etcdstore: remove %s: %w; not removed", key, err)
		}
	}
	return err
}
