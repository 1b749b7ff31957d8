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

	"github.com/sessionstore/sessionstore/internal/protocol"
)

// Watch runs one generation of the Store's watch on <prefix>/records/.
//
// It starts from a fresh read of the prefix's revision and watches from
// it. etcd vouches for the cache through progress notifications: each
// progress request follows a linearizable read of the cluster's revision,
// and an answer at that revision or later says that every change
// acknowledged before the request has been delivered (a member that lags
// behind the cluster, as a follower may after an election, answers with
// its own older revision: that answer vouches for nothing). The watch
// requires a leader, so that a member cut off from the cluster ends it
// instead of serving it stale; it ends too when etcd leaves a request
// unanswered for the staleness bound.
func (b *backend) Watch(ctx context.Context, f *protocol.Feed) error {
	// A stream of the Store's own (gRPC metadata makes it distinct), so
	// that its progress requests and their answers are its own.
	ctx = metadata.AppendToOutgoingContext(ctx, "sessionstore-watch", fmt.Sprintf("%p", b))
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	if b.hooks.beforeFreshRead != nil {
		b.hooks.beforeFreshRead()
	}
	pfx := recordsPrefix(b.prefix)
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
			name, ok := nameOf(strings.TrimPrefix(string(ev.Kv.Key), pfx))
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

// A progressRequest is a progress request awaiting its answer.
type progressRequest struct {
	sent int64 // when it was made (Feed.Mono)
	rev  int64 // the cluster's revision then: the answer must be at least this
}

// requestProgress asks etcd for a progress notification three times per
// staleness bound. If no answer came within the bound, it ends the watch
// (cancel), to be restarted from a fresh read.
func (b *backend) requestProgress(ctx context.Context, cancel context.CancelFunc, f *protocol.Feed, pending *atomic.Pointer[progressRequest]) {
	every := max(f.MaxStaleness()/3, time.Millisecond)
	// Until the first answer the cache serves nothing, and etcd drops a
	// request that comes while a new watch catches up (it syncs such
	// watches every 100 ms): ask every 10 ms until answered.
	const retry = 10 * time.Millisecond
	pfx := recordsPrefix(b.prefix)
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		p := pending.Load()
		if p != nil && f.Mono()-p.sent > int64(f.MaxStaleness()) {
			f.Log().Warn("sessionstore: etcd watch stopped answering; restarting it", "prefix", b.prefix)
			cancel()
			return
		}
		if p == nil {
			sent := f.Mono()
			resp, err := b.client.Get(ctx, pfx, clientv3.WithCountOnly())
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				f.Log().Warn("sessionstore: etcd read of the revision failed", "prefix", b.prefix, "err", err)
			default:
				p = &progressRequest{sent: sent, rev: resp.Header.Revision}
				pending.Store(p)
			}
		}
		// Also again while unanswered: etcd drops a request that comes
		// while the watch catches up, and a lagging member answers below
		// p.rev. An answer is then dated from the first request, which
		// errs on the safe side.
		if p != nil {
			if err := b.client.RequestProgress(ctx); err != nil && ctx.Err() == nil {
				f.Log().Warn("sessionstore: etcd progress request failed", "prefix", b.prefix, "err", err)
			}
		}
		wait := every
		if !f.Serving() {
			wait = min(retry, every)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
