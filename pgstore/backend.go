package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// backend is PostgreSQL's storage primitives for one Store (see
// protocol.Backend): records as rows, lease rows for locks, LISTEN/NOTIFY
// for the change feed and for waiters, heartbeat rows.
type backend struct {
	pool     *pgxpool.Pool
	t        tables
	ns       string
	id       string // the Store's: the holder of its locks, its heartbeat's id
	ttl      time.Duration
	noListen bool
	log      *slog.Logger

	mu      sync.Mutex // guards waiters
	waiters map[string][]chan struct{}
}

func newBackend(pool *pgxpool.Pool, schema, ns string, o options) *backend {
	return &backend{pool: pool, t: tablesIn(schema), ns: ns, id: randomID(), ttl: o.lockTTL,
		noListen: o.noListen, log: o.keys.Log, waiters: map[string][]chan struct{}{}}
}

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Where names a record's row in errors.
func (b *backend) Where(name string) string { return where(b.t, b.ns, name) }

func where(t tables, ns, name string) string {
	return fmt.Sprintf("%s (namespace %q, name %q)", t.records, ns, name)
}

func (b *backend) Read(ctx context.Context, name string) (protocol.Raw, error) {
	return readRaw(ctx, b.pool, b.t, b.ns, name)
}

func readRaw(ctx context.Context, q querier, t tables, ns, name string) (protocol.Raw, error) {
	raw := protocol.Raw{Name: name}
	err := q.QueryRow(ctx, `SELECT record, version FROM `+t.records+` WHERE namespace = $1 AND name = $2`, ns, name).
		Scan(&raw.Data, &raw.Ver)
	if errors.Is(err, pgx.ErrNoRows) {
		return protocol.Raw{Name: name}, nil
	}
	if err != nil {
		return protocol.Raw{}, fmt.Errorf("pgstore: read %s: %w", where(t, ns, name), noTables(t, err))
	}
	return raw, nil
}

// querier is a pool or a connection.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (b *backend) ReadAll(ctx context.Context) ([]protocol.Raw, error) {
	return readAll(ctx, b.pool, b.t, b.ns)
}

func readAll(ctx context.Context, pool *pgxpool.Pool, t tables, ns string) ([]protocol.Raw, error) {
	rows, err := pool.Query(ctx, `SELECT name, record, version FROM `+t.records+` WHERE namespace = $1 ORDER BY name`, ns)
	if err != nil {
		return nil, fmt.Errorf("pgstore: read %s: %w", t.records, noTables(t, err))
	}
	raws, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (protocol.Raw, error) {
		var raw protocol.Raw
		err := r.Scan(&raw.Name, &raw.Data, &raw.Ver)
		return raw, err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: read %s: %w", t.records, noTables(t, err))
	}
	return slices.DeleteFunc(raws, func(r protocol.Raw) bool { return sessionstore.ValidateAuthType(r.Name) != nil }), nil
}

func (b *backend) Names(ctx context.Context) ([]string, error) {
	rows, err := b.pool.Query(ctx, `SELECT name FROM `+b.t.records+` WHERE namespace = $1 ORDER BY name`, b.ns)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list %s: %w", b.t.records, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: list %s: %w", b.t.records, err)
	}
	return slices.DeleteFunc(names, func(n string) bool { return sessionstore.ValidateAuthType(n) != nil }), nil
}

// Heartbeat writes the Store's heartbeat row, alive for the lock TTL.
func (b *backend) Heartbeat(ctx context.Context, h protocol.Host) error {
	_, err := b.pool.Exec(ctx, `INSERT INTO `+b.t.hosts+` (namespace, id, host, pid, fingerprints, written, expires_at)
		VALUES ($1, $2, $3, $4, $5, now(), now() + $6 * interval '1 millisecond')
		ON CONFLICT (namespace, id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
			fingerprints = excluded.fingerprints, written = excluded.written, expires_at = excluded.expires_at`,
		b.ns, b.id, h.Host, h.PID, h.Keys, b.ttl.Milliseconds())
	if err != nil {
		return fmt.Errorf("pgstore: heartbeat in %s: %w", b.t.hosts, err)
	}
	return nil
}

// Close removes the Store's heartbeat.
func (b *backend) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	b.pool.Exec(ctx, `DELETE FROM `+b.t.hosts+` WHERE namespace = $1 AND id = $2`, b.ns, b.id)
	return nil
}

// hosts returns the live heartbeats of namespace ns.
func hosts(ctx context.Context, pool *pgxpool.Pool, t tables, ns string) ([]protocol.Host, error) {
	rows, err := pool.Query(ctx, `SELECT id, host, pid, fingerprints, written FROM `+t.hosts+`
		WHERE namespace = $1 AND expires_at > now()`, ns)
	if err != nil {
		return nil, fmt.Errorf("pgstore: hosts %s: %w", t.hosts, noTables(t, err))
	}
	hs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (protocol.Host, error) {
		var h protocol.Host
		err := r.Scan(&h.ID, &h.Host, &h.PID, &h.Keys, &h.Time)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: hosts %s: %w", t.hosts, noTables(t, err))
	}
	protocol.SortHosts(hs)
	return hs, nil
}

// releaseTimeout bounds the statements that release a lock or a
// heartbeat, which run whatever the caller's context.
const releaseTimeout = 5 * time.Second

// A lock is a record's lease row, held: its holder and generation fence
// every statement made under it.
type lock struct {
	b          *backend
	name       string
	generation int64
	stop       context.CancelFunc // ends the renewal
	renewed    sync.WaitGroup
	done       bool
}

// Lock takes name's lease row: inserted, or taken over once its lease
// expired (by the server's clock). While another holds it, Lock waits for
// its release (a notification, or, WithoutListen, polling) or its expiry.
func (b *backend) Lock(ctx context.Context, name string) (protocol.Lock, error) {
	pause := 10 * time.Millisecond
	for {
		wake := b.wait(name)
		var gen int64
		var left float64 // seconds until the holder's lease expires
		err := b.pool.QueryRow(ctx, `WITH taken AS (
			INSERT INTO `+b.t.locks+` AS l (namespace, name, holder, generation, expires_at)
			VALUES ($1, $2, $3, nextval('`+b.t.versions+`'), now() + $4 * interval '1 millisecond')
			ON CONFLICT (namespace, name) DO UPDATE SET holder = excluded.holder,
				generation = excluded.generation, expires_at = excluded.expires_at
			WHERE l.expires_at <= now()
			RETURNING generation)
			SELECT coalesce((SELECT generation FROM taken), 0),
				coalesce((SELECT extract(epoch FROM expires_at - now()) FROM `+b.t.locks+`
					WHERE namespace = $1 AND name = $2), 0)`,
			b.ns, name, b.id, b.ttl.Milliseconds()).Scan(&gen, &left)
		if err != nil {
			b.unwait(name, wake)
			return nil, fmt.Errorf("pgstore: lock %s: %w", b.Where(name), err)
		}
		if gen != 0 {
			b.unwait(name, wake)
			return b.held(name, gen), nil
		}
		// Held by another: wait for its release, or its expiry.
		wait := max(time.Duration(left*float64(time.Second)), time.Millisecond)
		if b.noListen {
			wait, pause = min(wait, pause), min(2*pause, 250*time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			b.unwait(name, wake)
			return nil, fmt.Errorf("pgstore: lock %s: %w", b.Where(name), ctx.Err())
		case <-wake:
		case <-t.C:
		}
		t.Stop()
		b.unwait(name, wake)
	}
}

// held starts renewing the lease of name's lock, generation gen.
func (b *backend) held(name string, gen int64) *lock {
	ctx, stop := context.WithCancel(context.Background())
	l := &lock{b: b, name: name, generation: gen, stop: stop}
	l.renewed.Go(func() {
		t := time.NewTicker(b.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			tag, err := b.pool.Exec(ctx, `UPDATE `+b.t.locks+` SET expires_at = now() + $5 * interval '1 millisecond'
				WHERE namespace = $1 AND name = $2 AND holder = $3 AND generation = $4 AND expires_at > now()`,
				b.ns, name, b.id, gen, b.ttl.Milliseconds())
			if err == nil && tag.RowsAffected() == 0 {
				b.log.Warn("sessionstore: the lease of a record's lock ended while it was held", "record", b.Where(name))
				return
			}
		}
	})
	return l
}

// Commit writes data (nil: deletes the record) in one statement fenced on
// the record's version and on the lease row still being this lock's,
// unexpired; the statement deletes the lease row and notifies listeners,
// so the lock is released in the write's round trip.
func (l *lock) Commit(ctx context.Context, ver int64, data []byte) (int64, error) {
	l.stopRenewal()
	b := l.b
	lease := `WITH lease AS (DELETE FROM ` + b.t.locks + ` WHERE namespace = $1::text AND name = $2::text
		AND holder = $3::text AND generation = $4::bigint AND expires_at > now() RETURNING 1)`
	var write string
	switch {
	case data == nil:
		write = `DELETE FROM ` + b.t.records + ` WHERE namespace = $1 AND name = $2 AND version = $5::bigint
			AND $6::bytea IS NULL AND EXISTS (SELECT FROM lease) RETURNING nextval('` + b.t.versions + `') AS version`
	case ver == 0:
		write = `INSERT INTO ` + b.t.records + ` (namespace, name, record, version)
			SELECT $1, $2, $6::bytea, nextval('` + b.t.versions + `') WHERE EXISTS (SELECT FROM lease) AND $5::bigint = 0
			ON CONFLICT (namespace, name) DO NOTHING RETURNING version`
	default:
		write = `UPDATE ` + b.t.records + ` SET record = $6::bytea, version = nextval('` + b.t.versions + `')
			WHERE namespace = $1 AND name = $2 AND version = $5::bigint AND EXISTS (SELECT FROM lease) RETURNING version`
	}
	var leased bool
	var newVer *int64
	err := b.pool.QueryRow(ctx, lease+`, w AS (`+write+`),
		n AS (SELECT pg_notify($7::text, json_build_object('ns', $1::text, 'n', $2::text,
			'v', coalesce((SELECT version FROM w), 0))::text))
		SELECT EXISTS (SELECT FROM lease), (SELECT version FROM w), (SELECT count(*) FROM n)`,
		b.ns, l.name, b.id, l.generation, ver, data, b.t.channel).Scan(&leased, &newVer, new(int64))
	if err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) && !pgconn.SafeToRetry(err) {
			// The connection was lost after the statement was sent:
			// it may have been applied.
			return 0, protocol.Ambiguous(err)
		}
		return 0, fmt.Errorf("pgstore: writing %s: %w", b.Where(l.name), err)
	}
	l.done = true // the statement deleted the lease row, if it was ours
	switch {
	case !leased:
		return 0, fmt.Errorf("pgstore: writing %s: the lease of its lock ended; not applied: %w", b.Where(l.name), sessionstore.ErrLockLost)
	case newVer == nil:
		return 0, fmt.Errorf("pgstore: writing %s: the record changed under its lock (written without the lock?); not applied", b.Where(l.name))
	}
	return *newVer, nil
}

func (l *lock) stopRenewal() {
	l.stop()
	l.renewed.Wait()
}

// Unlock deletes the lease row unless Commit did, and wakes the waiters.
func (l *lock) Unlock() {
	l.stopRenewal()
	if l.done {
		return
	}
	l.done = true
	b := l.b
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	_, err := b.pool.Exec(ctx, `WITH lease AS (DELETE FROM `+b.t.locks+` WHERE namespace = $1 AND name = $2
			AND holder = $3 AND generation = $4 RETURNING 1)
		SELECT pg_notify($5, json_build_object('ns', $1::text, 'n', $2::text, 'v', 0)::text) FROM lease`,
		b.ns, l.name, b.id, l.generation, b.t.channel)
	if err != nil {
		b.log.Warn("sessionstore: could not release a record's lock; it expires with its lease", "record", b.Where(l.name), "err", err)
	}
}

// wait registers a waiter for name's release: the returned channel is
// closed on a notification about name.
func (b *backend) wait(name string) chan struct{} {
	ch := make(chan struct{})
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiters[name] = append(b.waiters[name], ch)
	return ch
}

func (b *backend) unwait(name string, ch chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := slices.DeleteFunc(b.waiters[name], func(c chan struct{}) bool { return c == ch })
	if len(ws) == 0 {
		delete(b.waiters, name)
	} else {
		b.waiters[name] = ws
	}
}

// wake wakes the waiters for name (or, for "", every waiter).
func (b *backend) wake(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for n, ws := range b.waiters {
		if name == "" || n == name {
			for _, ch := range ws {
				close(ch)
			}
			delete(b.waiters, n)
		}
	}
}
