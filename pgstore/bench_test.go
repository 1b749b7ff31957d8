package pgstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/pgstore"
)

// Each benchmark stands next to its floor, measured in the same run
// (docs/PERFORMANCE.md, the pgstore rows). Nothing here asserts a time:
//
//	go test ./pgstore -run '^$' -bench . -benchtime 200x

var sink sessionstore.AuthObject

// tokenChars is the alphabet of a JWT (base64url and dots).
const tokenChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."

// tokenString is n characters of a JWT-like token, varied but
// deterministic.
func tokenString(seed uint32, n int) string {
	var b strings.Builder
	b.Grow(n)
	x := seed*2654435761 + 1
	for range n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b.WriteByte(tokenChars[x%uint32(len(tokenChars))])
	}
	return b.String()
}

// token2K is a realistic 2 KiB session: a 1.5 KiB access token and a
// 0.5 KiB refresh token.
func token2K() sessionstore.AuthObject {
	return sessionstore.AuthObject{AccessToken: tokenString(1, 1536), RefreshToken: tokenString(2, 512),
		TokenType: "Bearer", Scope: "0", Expiry: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// BenchmarkGetHitFloor is the floor of a cache hit: a lock-free map lookup
// (atomic.Pointer[map]) returning the value.
func BenchmarkGetHitFloor(b *testing.B) {
	var p atomic.Pointer[map[string]sessionstore.AuthObject]
	m := map[string]sessionstore.AuthObject{"server": token2K()}
	p.Store(&m)
	b.ReportAllocs()
	for b.Loop() {
		a, ok := (*p.Load())["server"]
		if !ok {
			b.Fatal("miss")
		}
		sink = a
	}
}

func BenchmarkGetHit(b *testing.B) {
	e := newEnv(b)
	s := e.open(b)
	ctx := context.Background()
	require.NoError(b, s.Set(ctx, "server", token2K()))
	waitFor(b, "the feed to vouch", s.Watching)
	_, err := s.Get(ctx, "server") // the feed's first generation cached nothing: read once
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		a, err := s.Get(ctx, "server")
		if err != nil {
			b.Fatal(err)
		}
		sink = a
	}
}

// BenchmarkGetWithoutListenFloor is the floor of a Get WithoutListen: one
// SELECT of the row's version by primary key, with pgx directly.
func BenchmarkGetWithoutListenFloor(b *testing.B) {
	e := newEnv(b)
	require.NoError(b, e.open(b).Set(context.Background(), "server", token2K()))
	pool := e.pool(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		var v int64
		if err := pool.QueryRow(ctx, `SELECT version FROM sessionstore.records WHERE namespace = $1 AND name = $2`,
			e.ns, "server").Scan(&v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetWithoutListen(b *testing.B) {
	e := newEnv(b)
	s := e.open(b, pgstore.WithoutListen())
	ctx := context.Background()
	require.NoError(b, s.Set(ctx, "server", token2K()))
	b.ReportAllocs()
	for b.Loop() {
		a, err := s.Get(ctx, "server")
		if err != nil {
			b.Fatal(err)
		}
		sink = a
	}
}

// floorAuth is the JSON of a session as the floor writes it.
type floorAuth struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	Scope        string    `json:"scope,omitempty"`
}

// floorWriter is the floor of a Set or Update, with pgx directly: a
// lease row inserted (or taken over once expired), age.Encrypt of the
// JSON, an UPDATE of the record fenced on its version and on the lease
// row, and the lease row deleted: three round trips, as a Store's Set
// makes (lock, read, and a commit that releases the lock). It knows its
// record's version from its own last write, so it reads nothing.
type floorWriter struct {
	pool     *pgxpool.Pool
	ns, name string
	recip    age.Recipient
	ver      int64
	cur      sessionstore.AuthObject
	pt, ct   bytes.Buffer
}

func newFloorWriter(tb testing.TB, e env, recip age.Recipient) *floorWriter {
	tb.Helper()
	f := &floorWriter{pool: e.pool(tb), ns: e.ns + "-floor", name: "server", recip: recip}
	require.NoError(tb, f.pool.QueryRow(context.Background(), `INSERT INTO sessionstore.records (namespace, name, record, version)
		VALUES ($1, $2, '', nextval('sessionstore.versions')) RETURNING version`, f.ns, f.name).Scan(&f.ver))
	return f
}

func (f *floorWriter) set(ctx context.Context, a sessionstore.AuthObject) error {
	var gen int64
	err := f.pool.QueryRow(ctx, `INSERT INTO sessionstore.locks AS l (namespace, name, holder, generation, expires_at)
		VALUES ($1, $2, 'floor', nextval('sessionstore.versions'), now() + interval '15 seconds')
		ON CONFLICT (namespace, name) DO UPDATE SET holder = excluded.holder,
			generation = excluded.generation, expires_at = excluded.expires_at
		WHERE l.expires_at <= now() RETURNING generation`, f.ns, f.name).Scan(&gen)
	if err != nil {
		return fmt.Errorf("floor: lease: %w", err)
	}
	f.pt.Reset()
	if err := json.NewEncoder(&f.pt).Encode(floorAuth{a.AccessToken, a.RefreshToken, a.TokenType, a.Expiry, a.Scope}); err != nil {
		return err
	}
	f.ct.Reset()
	w, err := age.Encrypt(&f.ct, f.recip)
	if err != nil {
		return err
	}
	w.Write(f.pt.Bytes())
	if err := w.Close(); err != nil {
		return err
	}
	err = f.pool.QueryRow(ctx, `UPDATE sessionstore.records SET record = $3, version = nextval('sessionstore.versions')
		WHERE namespace = $1 AND name = $2 AND version = $4 AND EXISTS (SELECT FROM sessionstore.locks
			WHERE namespace = $1 AND name = $2 AND holder = 'floor' AND generation = $5 AND expires_at > now())
		RETURNING version`, f.ns, f.name, f.ct.Bytes(), f.ver, gen).Scan(&f.ver)
	if err != nil {
		return fmt.Errorf("floor: fenced update: %w", err)
	}
	f.cur = a
	_, err = f.pool.Exec(ctx, `DELETE FROM sessionstore.locks WHERE namespace = $1 AND name = $2 AND holder = 'floor' AND generation = $3`,
		f.ns, f.name, gen)
	return err
}

// update is the floor of an Update: the current value is its own last
// write, already in memory.
func (f *floorWriter) update(ctx context.Context) error {
	next, err := bump(f.cur, true)
	if err != nil {
		return err
	}
	return f.set(ctx, next)
}

// bump is the Update function of the benchmarks: it counts in Scope.
func bump(cur sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error) {
	if !exists {
		return sessionstore.AuthObject{}, errors.New("no record")
	}
	n, _ := strconv.Atoi(cur.Scope)
	cur.Scope = strconv.Itoa(n + 1)
	return cur, nil
}

// writePair is one Store and one floor writer on the same server, each
// with its own pool and its own record, both holding a 2 KiB session.
func writePair(tb testing.TB) (*pgstore.Store, *floorWriter) {
	tb.Helper()
	e := newEnv(tb)
	s := e.open(tb)
	ring, err := crypto.LoadKeyring(e.key)
	require.NoError(tb, err)
	f := newFloorWriter(tb, e, ring.Recipient())
	ctx := ctxT(tb)
	require.NoError(tb, s.Set(ctx, "server", token2K()))
	require.NoError(tb, f.set(ctx, token2K()))
	return s, f
}

func BenchmarkSet(b *testing.B) {
	s, _ := writePair(b)
	ctx, a := context.Background(), token2K()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Set(ctx, "server", a); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetFloor(b *testing.B) {
	_, f := writePair(b)
	ctx, a := context.Background(), token2K()
	b.ReportAllocs()
	for b.Loop() {
		if err := f.set(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetInterleaved alternates a Set of ours with one of the
// floor's, op by op, so that both see the same machine, and reports each
// one's mean time and their ratio (the row's target: ≤ 1.3).
func BenchmarkSetInterleaved(b *testing.B) {
	s, f := writePair(b)
	ctx, a := context.Background(), token2K()
	var ours, floor time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := s.Set(ctx, "server", a); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := f.set(ctx, a); err != nil {
			b.Fatal(err)
		}
		ours, floor = ours+t1.Sub(t0), floor+time.Since(t1)
	}
	b.ReportMetric(float64(ours.Microseconds())/float64(b.N), "ours-µs/op")
	b.ReportMetric(float64(floor.Microseconds())/float64(b.N), "floor-µs/op")
	b.ReportMetric(float64(ours)/float64(floor), "ratio")
}

func BenchmarkUpdate(b *testing.B) {
	s, _ := writePair(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Update(ctx, "server", bump); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateFloor(b *testing.B) {
	_, f := writePair(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := f.update(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVisibility measures, for b.N writes of a Store in this process
// (with a pool of its own, as another host's), how long after the commit
// each was visible, and reports the p99s of ours and of the floor, and
// their ratio:
//
//   - the commit: a raw LISTEN connection hears the write's notification;
//   - ours: a reader Store (a pool of its own) polling Get every 100 µs
//     (pacer_linux_test.go) sees the new value;
//   - floor: another raw LISTEN connection hears the notification, SELECTs
//     the row and age.Decrypt opens it.
func BenchmarkVisibility(b *testing.B) {
	ctx := ctxT(b)
	e := newEnv(b)
	writer, reader := e.open(b), e.open(b)
	ring, err := crypto.LoadKeyring(e.key)
	require.NoError(b, err)
	id := ring.Primary()
	value := func(i int) sessionstore.AuthObject {
		a := token2K()
		a.AccessToken = fmt.Sprintf("v%07d.", i) + a.AccessToken[9:]
		return a
	}
	require.NoError(b, writer.Set(ctx, "server", value(0)))
	waitFor(b, "the reader to cache the record", func() bool {
		a, err := reader.Get(ctx, "server")
		require.NoError(b, err)
		return reader.Watching() && a.AccessToken == value(0).AccessToken
	})

	type seen struct {
		at  time.Time
		err error
	}
	listen := func(open bool) chan seen {
		conn, err := pgx.Connect(ctx, e.url)
		require.NoError(b, err)
		b.Cleanup(func() { conn.Close(context.Background()) })
		_, err = conn.Exec(ctx, `LISTEN "sessionstore:sessionstore"`)
		require.NoError(b, err)
		ch := make(chan seen, b.N+1)
		go func() {
			for {
				n, err := conn.WaitForNotification(ctx)
				if err != nil {
					return
				}
				var c struct {
					NS string `json:"ns"`
					V  int64  `json:"v"`
				}
				if json.Unmarshal([]byte(n.Payload), &c) != nil || c.NS != e.ns || c.V == 0 {
					continue
				}
				var s seen
				if open {
					var data []byte
					s.err = conn.QueryRow(ctx, `SELECT record FROM sessionstore.records WHERE namespace = $1 AND name = $2`,
						e.ns, "server").Scan(&data)
					if s.err == nil {
						var r io.Reader
						if r, s.err = age.Decrypt(bytes.NewReader(data), id); s.err == nil {
							var pt []byte
							if pt, s.err = io.ReadAll(r); s.err == nil && !bytes.Contains(pt, []byte(`"v`)) {
								s.err = errors.New("floor: decrypted record holds no session")
							}
						}
					}
				}
				s.at = time.Now()
				ch <- s
			}
		}()
		return ch
	}
	commits, floors := listen(false), listen(true)
	next := func(ch chan seen, what string) time.Time {
		select {
		case s := <-ch:
			require.NoError(b, s.err)
			return s.at
		case <-time.After(20 * time.Second):
			b.Fatalf("no %s notification", what)
			return time.Time{}
		}
	}

	var ours, floor []time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		want := value(i).AccessToken
		got := make(chan time.Time, 1)
		go func() {
			p := startPacer(100 * time.Microsecond)
			for {
				if a, err := reader.Get(ctx, "server"); err == nil && a.AccessToken == want {
					got <- time.Now()
					return
				}
				if ctx.Err() != nil {
					return
				}
				p.wait()
			}
		}()
		require.NoError(b, writer.Set(ctx, "server", value(i)))
		committed := next(commits, "commit")
		floorAt := next(floors, "floor")
		var oursAt time.Time
		select {
		case oursAt = <-got:
		case <-time.After(20 * time.Second):
			b.Fatal("the reader never saw the write")
		}
		ours, floor = append(ours, oursAt.Sub(committed)), append(floor, floorAt.Sub(committed))
	}
	b.StopTimer()
	po, pf := p99(ours), p99(floor)
	b.ReportMetric(float64(po.Microseconds()), "p99-µs")
	b.ReportMetric(float64(pf.Microseconds()), "floor-p99-µs")
	if pf > 0 {
		b.ReportMetric(float64(po)/float64(pf), "p99-ratio")
	}
}

// p99 is the 99th percentile of ds.
func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*99/100)]
}
