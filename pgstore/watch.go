package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionstore/sessionstore/internal/protocol"
)

// A change is the payload of a records notification: namespace, name and
// the record's new version (0 for a lock released without a write). It
// never holds a token.
type change struct {
	NS   string `json:"ns"`
	Name string `json:"n"`
	Ver  int64  `json:"v"`
}

// Watch runs one generation of the Store's change feed on a connection of
// its own (not the pool's), listening on the schema's channel.
//
// The server delivers notifications in the order their transactions
// committed. Three times per staleness bound the Store notifies itself on
// a channel of its own; when that notification arrives, every change
// committed before it was sent has arrived too, and the cache is current
// as of that moment. A connection that drops, or leaves a notification
// unanswered for the bound, ends the generation; the next one starts from
// a fresh connection, with nothing cached.
func (b *backend) Watch(ctx context.Context, f *protocol.Feed) error {
	if b.noListen {
		<-ctx.Done() // no feed: nothing is ever served from the cache
		return ctx.Err()
	}
	conn, err := pgx.ConnectConfig(ctx, b.pool.Config().ConnConfig)
	if err != nil {
		return fmt.Errorf("pgstore: listening connection: %w", err)
	}
	defer conn.Close(context.Background())
	progress := "sessionstore:progress:" + b.id
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{b.t.channel}.Sanitize()+"; LISTEN "+pgx.Identifier{progress}.Sanitize()); err != nil {
		return fmt.Errorf("pgstore: listen: %w", err)
	}
	f.Begin()
	b.wake("") // a release may have been missed before the LISTEN

	every := max(f.MaxStaleness()/3, time.Millisecond)
	var seq int64
	var sentAt time.Time // when the pending request was sent; zero: none pending
	next := time.Now()
	for {
		if !sentAt.IsZero() && time.Since(sentAt) > f.MaxStaleness() {
			return errors.New("pgstore: the server left the listening connection's notification unanswered")
		}
		if sentAt.IsZero() && !time.Now().Before(next) {
			seq++
			sentAt = time.Now()
			if _, err := conn.Exec(ctx, "SELECT pg_notify($1, $2)", progress, strconv.FormatInt(seq, 10)); err != nil {
				return fmt.Errorf("pgstore: notify: %w", err)
			}
			next = time.Now().Add(every)
		}
		wctx, cancel := context.WithDeadline(ctx, next)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && wctx.Err() != nil && !conn.IsClosed() {
				continue // time for the next request
			}
			return fmt.Errorf("pgstore: listening connection: %w", err)
		}
		if n.Channel == progress {
			if n.Payload == strconv.FormatInt(seq, 10) && !sentAt.IsZero() {
				f.Heard(sentAt)
				sentAt = time.Time{}
			}
			continue
		}
		var c change
		if json.Unmarshal([]byte(n.Payload), &c) != nil || c.NS != b.ns {
			continue
		}
		b.wake(c.Name)
		if c.Ver == 0 {
			continue // a lock released, nothing written
		}
		if !f.Wants(c.Name, c.Ver) {
			f.Changed(c.Name, c.Ver, nil)
			continue
		}
		// Cached: read the new record now, so that a Get needs no round
		// trip.
		raw, err := readRaw(ctx, conn, b.t, b.ns, c.Name)
		if err != nil {
			return err
		}
		if raw.Data == nil {
			f.Changed(c.Name, c.Ver, nil)
		} else {
			f.Changed(c.Name, raw.Ver, raw.Data)
		}
	}
}
