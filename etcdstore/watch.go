package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/sessionstore/sessionstore/internal/names"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// Watch runs one generation of the watch on <prefix>/records/, from a
// fresh read. A progress answer vouches for the cache only at or past the
// cluster's revision read before the request (a lagging member answers
// below it); the watch requires a leader, so that a member cut off from
// the cluster ends it.
func (b *backend) Watch(ctx context.Context, f *protocol.Feed) error {
	// A gRPC stream of the Store's own, so that progress answers are its own.
	ctx = metadata.AppendToOutgoingContext(ctx, "sessionstore-watch", fmt.Sprintf("%p", b))
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	if b.hooks.beforeFreshRead != nil {
		b.hooks.beforeFreshRead()
	}
	pfx := b.prefix + "/records/"
	resp, err := b.client.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("fresh read of %s: %w", pfx, err)
	}
	f.Begin()
	if b.hooks.beforeWatch != nil {
		b.hooks.beforeWatch()
	}
	// From the read's revision itself, not the next: etcd answers no
	// progress request for a watch that starts past its current revision.
	// Changes at that revision are already in any later read, and the
	// cache ignores what is not newer than a cached entry.
	wch := b.client.Watch(ctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision),
		clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	var pending atomic.Pointer[progressRequest]
	for wr := range wch {
		if err := wr.Err(); err != nil {
			return err
		}
		if wr.Canceled {
			return errors.New("watch canceled")
		}
		if b.hooks.onResponse != nil {
			b.hooks.onResponse()
		}
		if wr.Created {
			// Progress answers go to the watches the stream has.
			go b.requestProgress(ctx, cancel, f, &pending)
		}
		for _, ev := range wr.Events {
			name, ok := names.Name(strings.TrimPrefix(string(ev.Kv.Key), pfx))
			if !ok {
				continue
			}
			var data []byte
			if ev.Type == clientv3.EventTypePut {
				data = ev.Kv.Value
			}
			f.Changed(name, ev.Kv.ModRevision, data)
		}
		if p := pending.Load(); p != nil && wr.IsProgressNotify() && wr.Header.Revision >= p.rev && pending.CompareAndSwap(p, nil) {
			f.Heard(p.sent)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("watch channel closed")
}

type progressRequest struct {
	sent time.Time // when it was made
	rev  int64     // the cluster's revision then: the answer must be at least this
}

// requestProgress asks etcd for a progress notification three times per
// staleness bound, and ends the watch if none came within the bound.
func (b *backend) requestProgress(ctx context.Context, cancel context.CancelFunc, f *protocol.Feed, pending *atomic.Pointer[progressRequest]) {
	every := max(f.MaxStaleness()/3, time.Millisecond)
	// Until the first answer the cache serves nothing, and etcd drops a
	// request that comes while a new watch catches up (it syncs such
	// watches every 100 ms): ask every 10 ms until answered.
	const retry = 10 * time.Millisecond
	pfx := b.prefix + "/records/"
	for {
		p := pending.Load()
		if p != nil && time.Since(p.sent) > f.MaxStaleness() {
			b.log.Warn("sessionstore: etcd watch stopped answering; restarting it", "prefix", b.prefix)
			cancel()
			return
		}
		if p == nil {
			sent := time.Now()
			resp, err := b.client.Get(ctx, pfx, clientv3.WithCountOnly())
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				b.log.Warn("sessionstore: etcd read of the revision failed", "prefix", b.prefix, "err", err)
			default:
				p = &progressRequest{sent: sent, rev: resp.Header.Revision}
				pending.Store(p)
			}
		}
		// Again while unanswered (dropped, or answered below p.rev): an
		// answer is dated from the first request, on the safe side.
		if p != nil {
			if err := b.client.RequestProgress(ctx); err != nil && ctx.Err() == nil {
				b.log.Warn("sessionstore: etcd progress request failed", "prefix", b.prefix, "err", err)
			}
		}
		wait := every
		if !f.Serving() {
			wait = min(retry, every)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
