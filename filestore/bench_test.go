package filestore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/fsutil"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// Each benchmark of the store stands next to its floor: the unavoidable
// work, done the cheapest way Go allows (raw system calls where those are
// cheaper than package os), on the same realistic 2 KiB token (see
// docs/PERFORMANCE.md, "The targets"). A floor slower than that would hide
// overhead. The targets bound the ratio (see TestPerformanceTargets),
// never the absolute time.
//
//	go test ./filestore -run '^$' -bench .

// --- The token ----------------------------------------------------------------

// tokenAuth is a realistic session: a JWT-like access token of ~1.5 KiB
// and a 512-byte refresh token, ~2 KiB of JSON between them. seed varies
// the tokens' bytes (not their sizes).
func tokenAuth(seed uint64) sessionstore.AuthObject {
	a := sampleAuth()
	a.AccessToken = jwtLike(seed)
	a.RefreshToken = "rt-SECRET-" + randomB64(seed+1, 502)
	return a
}

// jwtLike is header.payload.signature, base64url, as an RS256 JWT with a
// dozen claims: 1,480 bytes.
func jwtLike(seed uint64) string {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"k-2026"}`))
	return header + "." + randomB64(seed, 1080) + "." + randomB64(seed+2, 342)
}

func randomB64(seed uint64, n int) string {
	rng := rand.New(rand.NewPCG(seed, 0x5e551))
	raw := make([]byte, n)
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	return base64.RawURLEncoding.EncodeToString(raw)[:n]
}

func TestTokenIsTwoKiB(t *testing.T) {
	a := tokenAuth(0)
	both, err := json.Marshal(struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}{a.AccessToken, a.RefreshToken})
	require.NoError(t, err)
	require.InDelta(t, 2048, len(both), 64, "access + refresh token JSON")
	require.Equal(t, 1480, len(a.AccessToken))
}

// fillRecordsWith writes n records rec-0 … rec-(n-1) holding auth (each
// with its own access token, and its lock file, as a store's records
// have), sealed with key's keyring, quickly (plain file writes, in
// parallel: this is set-up).
func fillRecordsWith(t testing.TB, dir, key string, n int, auth sessionstore.AuthObject) {
	t.Helper()
	ring, err := crypto.LoadKeyring(key)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < n; i += 2 {
				name := "rec-" + strconv.Itoa(i)
				a := auth
				a.AccessToken = name + auth.AccessToken[len(name):]
				data, err := wire.EncodeAuth(a)
				var ct []byte
				if err == nil {
					ct, err = envelope.Seal(ring, &envelope.Record{AuthType: name, Seq: 1, Written: time.Now(), Auth: data})
				}
				if err == nil {
					err = os.WriteFile(filepath.Join(dir, name+".age"), ct, 0o600)
				}
				if err == nil {
					err = os.WriteFile(filepath.Join(dir, name+".lock"), nil, 0o600)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
}

var (
	sink    sessionstore.AuthObject
	sinkTok *oauth2.Token
	sinkN   atomic.Int64
)

// --- Get, cache hit -------------------------------------------------------------

// floorCache is the floor of a cache hit: a lock-free map lookup
// returning the value.
type floorCache struct {
	m atomic.Pointer[map[string]sessionstore.AuthObject]
}

func newFloorCache(n int) *floorCache {
	m := make(map[string]sessionstore.AuthObject, n)
	for i := range n {
		m["rec-"+strconv.Itoa(i)] = tokenAuth(uint64(i))
	}
	c := &floorCache{}
	c.m.Store(&m)
	return c
}

func (c *floorCache) get(k string) (sessionstore.AuthObject, bool) {
	a, ok := (*c.m.Load())[k]
	return a, ok
}

func BenchmarkGetHit(b *testing.B) {
	s := hitStore(b, 10)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		a, err := s.Get(ctx, "rec-5")
		if err != nil {
			b.Fatal(err)
		}
		sink = a
	}
}

func BenchmarkGetHitFloor(b *testing.B) {
	c := newFloorCache(10)
	b.ReportAllocs()
	for b.Loop() {
		a, ok := c.get("rec-5")
		if !ok {
			b.Fatal("miss")
		}
		sink = a
	}
}

// BenchmarkGetHitParallel runs cache hits from 1 and 2 goroutines
// (GOMAXPROCS 1 and 2): ns/op is wall time per operation, so the ratio of
// the two is the speedup.
func BenchmarkGetHitParallel(b *testing.B) {
	for _, procs := range []int{1, 2} {
		b.Run("goroutines="+strconv.Itoa(procs), getHitParallel(true, procs))
	}
}

func BenchmarkGetHitParallelFloor(b *testing.B) {
	for _, procs := range []int{1, 2} {
		b.Run("goroutines="+strconv.Itoa(procs), getHitParallel(false, procs))
	}
}

func getHitParallel(ours bool, procs int) func(*testing.B) {
	return func(b *testing.B) {
		c, s, ctx := newFloorCache(10), hitStore(b, 10), context.Background()
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		b.SetParallelism(1) // GOMAXPROCS goroutines
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var n int
			if ours {
				for pb.Next() {
					a, _ := s.Get(ctx, "rec-5")
					n += len(a.AccessToken)
				}
			} else {
				for pb.Next() {
					a, _ := c.get("rec-5")
					n += len(a.AccessToken)
				}
			}
			sinkN.Add(int64(n))
		})
	}
}

// hitStore returns a Store over n records whose watcher vouches for rec-5.
func hitStore(b *testing.B, n int) *filestore.Store {
	b.Helper()
	dir, key := b.TempDir(), newKeyFile(b, false)
	fillRecordsWith(b, dir, key, n, tokenAuth(0))
	s := openStore(b, dir, key)
	warmHit(b, s, "rec-5")
	return s
}

// warmHit gets authType until the Store's watcher vouches for it.
func warmHit(t testing.TB, s *filestore.Store, authType string) {
	t.Helper()
	ctx := context.Background()
	for i := range 3 {
		_, err := s.Get(ctx, authType)
		require.NoError(t, err)
		if i == 1 { // the second Get starts the watcher
			waitFor(t, "the watcher", s.Watching)
		}
	}
}

// --- Get, cache hit, WithoutWatcher ----------------------------------------------

// agedFixture is a store of 10 records and its key file, made once per
// test process and older than the racy window (fsutil.RacyWindow), as the
// files of a long-running store are: only then does a file's identity
// stand for its bytes. Within a second of a write, Get without a watcher
// reads and hashes the file instead (the floor's fstatat does not know
// the difference).
var agedFixture struct {
	once     sync.Once
	dir, key string
}

func agedStore(b *testing.B) (dir, key string) {
	agedFixture.once.Do(func() {
		root, err := os.MkdirTemp("", "sessionstore-bench-")
		require.NoError(b, err)
		cleanups = append(cleanups, func() { os.RemoveAll(root) })
		agedFixture.dir, agedFixture.key = filepath.Join(root, "store"), filepath.Join(root, "sessionstore.key")
		require.NoError(b, os.Mkdir(agedFixture.dir, 0o700))
		ring, err := crypto.GenerateKeyring(false)
		require.NoError(b, err)
		require.NoError(b, crypto.CreateKeyFile(agedFixture.key, ring))
		fillRecordsWith(b, agedFixture.dir, agedFixture.key, 10, tokenAuth(0))
		time.Sleep(fsutil.RacyWindow() + 50*time.Millisecond)
	})
	return agedFixture.dir, agedFixture.key
}

func BenchmarkGetHitNoWatcher(b *testing.B) {
	dir, key := agedStore(b)
	s := openStore(b, dir, key, filestore.WithoutWatcher())
	ctx := context.Background()
	_, err := s.Get(ctx, "rec-5")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		a, err := s.Get(ctx, "rec-5")
		if err != nil {
			b.Fatal(err)
		}
		sink = a
	}
}

// BenchmarkGetHitNoWatcherFloor: one fstatat of the record, which is all
// it takes to tell that a file did not change.
func BenchmarkGetHitNoWatcherFloor(b *testing.B) {
	dir, _ := agedStore(b)
	path := filepath.Join(dir, "rec-5.age")
	b.ReportAllocs()
	for b.Loop() {
		if err := floorStat(path); err != nil {
			b.Fatal(err)
		}
	}
}

// --- TokenSource, valid token ---------------------------------------------------

func BenchmarkTokenSource(b *testing.B) {
	dir, key := b.TempDir(), newKeyFile(b, false)
	s := openStore(b, dir, key)
	ctx := context.Background()
	a := tokenAuth(0)
	a.Expiry = time.Now().Add(time.Hour)
	require.NoError(b, s.Set(ctx, "server", a))
	warmHit(b, s, "server")
	ts := sessionstore.TokenSource(ctx, s, "server", nil)
	_, err := ts.Token()
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		tok, err := ts.Token()
		if err != nil {
			b.Fatal(err)
		}
		sinkTok = tok
	}
}

func BenchmarkTokenSourceFloor(b *testing.B) {
	a := tokenAuth(0)
	a.Expiry = time.Now().Add(time.Hour)
	ts := oauth2.ReuseTokenSource(a.Token(), nil) // valid: src is never called
	b.ReportAllocs()
	for b.Loop() {
		tok, err := ts.Token()
		if err != nil {
			b.Fatal(err)
		}
		sinkTok = tok
	}
}

// --- Cold start: Open + Get + Close -----------------------------------------------

func BenchmarkColdStart(b *testing.B) {
	dir, key := b.TempDir(), newKeyFile(b, false)
	fillRecordsWith(b, dir, key, 1, tokenAuth(0))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := filestore.Open(dir, filestore.WithKeyFile(key))
		if err != nil {
			b.Fatal(err)
		}
		a, err := s.Get(ctx, "rec-0")
		if err != nil {
			b.Fatal(err)
		}
		sink = a
		s.Close()
	}
}

// BenchmarkColdStartFloor: read the key file, age.ParseIdentities, read
// the record, age.Decrypt, one json.Unmarshal of the plaintext.
func BenchmarkColdStartFloor(b *testing.B) {
	dir, key := b.TempDir(), newKeyFile(b, false)
	fillRecordsWith(b, dir, key, 1, tokenAuth(0))
	path := filepath.Join(dir, "rec-0.age")
	keyBuf, recBuf := make([]byte, 0, 4096), make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		a, err := coldStartFloor(key, path, keyBuf, recBuf)
		if err != nil {
			b.Fatal(err)
		}
		sink = a
	}
}

// floorEnvelope is a record's plaintext, decoded in one json.Unmarshal.
type floorEnvelope struct {
	Version  int                     `json:"v"`
	AuthType string                  `json:"auth_type"`
	Seq      uint64                  `json:"seq"`
	Written  time.Time               `json:"written"`
	Auth     sessionstore.AuthObject `json:"auth"`
	MAC      []byte                  `json:"mac"`
}

func coldStartFloor(key, path string, keyBuf, recBuf []byte) (sessionstore.AuthObject, error) {
	kf, err := floorReadFile(key, keyBuf)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	ids, err := age.ParseIdentities(bytes.NewReader(kf))
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	return floorOpen(path, recBuf, ids...)
}

// floorOpen reads, decrypts and decodes a record.
func floorOpen(path string, buf []byte, ids ...age.Identity) (sessionstore.AuthObject, error) {
	ct, err := floorReadFile(path, buf)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	pt, err := floorDecrypt(ct, ids...)
	if err != nil {
		return sessionstore.AuthObject{}, err
	}
	var env floorEnvelope
	err = json.Unmarshal(pt, &env)
	return env.Auth, err
}

func floorDecrypt(ct []byte, ids ...age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(ct), ids...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// --- Set ----------------------------------------------------------------------------

// A setRig writes the same 2 KiB token into dir, ours through Stores and
// the floor by hand, to the same recipients and with a plaintext of the
// size ours seals.
type setRig struct {
	dir    string
	stores []*filestore.Store
	auth   sessionstore.AuthObject
	recips []age.Recipient
	pt     []byte // a plaintext ours sealed
}

// newSetRig opens stores Stores on dir, with a key file in keyDir.
func newSetRig(t testing.TB, dir, keyDir string, stores int) *setRig {
	t.Helper()
	key := filepath.Join(keyDir, "sessionstore.key")
	if _, err := os.Stat(key); err != nil {
		ring, err := crypto.GenerateKeyring(false)
		require.NoError(t, err)
		require.NoError(t, crypto.CreateKeyFile(key, ring))
		// A long-running writer's key file is older than the racy window:
		// checking it under the lock is then two fstatat calls.
		time.Sleep(fsutil.RacyWindow() + 50*time.Millisecond)
	}
	r := &setRig{dir: dir, auth: tokenAuth(0)}
	for range stores {
		r.stores = append(r.stores, openStore(t, dir, key))
	}
	require.NoError(t, r.ours(0))
	ring := r.stores[0].Keyring()
	r.recips = ring.Recipients()
	ct, err := os.ReadFile(filepath.Join(dir, "server.age"))
	require.NoError(t, err)
	r.pt, err = floorDecrypt(ct, ring.Primary())
	require.NoError(t, err)
	require.NoError(t, r.floor())
	return r
}

func (r *setRig) ours(i int) error {
	return r.stores[i].Set(context.Background(), "server", r.auth)
}

// floor is the floor of a Set: take the record's flock (open + flock),
// age.Encrypt the plaintext, write it durably with raw system calls,
// release the lock (close). 11 system calls.
func (r *setRig) floor() error {
	unlock, err := floorLock(filepath.Join(r.dir, "floor.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	var buf bytes.Buffer
	buf.Grow(len(r.pt) + 512)
	w, err := age.Encrypt(&buf, r.recips...)
	if err != nil {
		return err
	}
	if _, err := w.Write(r.pt); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return floorDurableWrite(r.dir, "floor.age", ".floor.tmp-0", buf.Bytes())
}

// setDirs are where Set is measured: the test's disk, and a tmpfs (CPU
// and system calls alone) where there is one.
func setDirs(t testing.TB) map[string][2]string {
	dirs := map[string][2]string{"disk": {t.TempDir(), t.TempDir()}}
	if mnt, ok := tmpfsDir(t); ok {
		dirs["tmpfs"] = [2]string{mkdirIn(t, mnt, "store"), mkdirIn(t, mnt, "keys")}
	}
	return dirs
}

func mkdirIn(t testing.TB, parent, name string) string {
	dir := filepath.Join(parent, name)
	require.NoError(t, os.Mkdir(dir, 0o700))
	return dir
}

func BenchmarkSet(b *testing.B)      { benchSetOn(b, true) }
func BenchmarkSetFloor(b *testing.B) { benchSetOn(b, false) }

func benchSetOn(b *testing.B, ours bool) {
	for _, where := range []string{"disk", "tmpfs"} {
		b.Run(where, func(b *testing.B) {
			d, ok := setDirs(b)[where]
			if !ok {
				b.Skip("no tmpfs")
			}
			r := newSetRig(b, d[0], d[1], 1)
			op := r.floor
			if ours {
				op = func() error { return r.ours(0) }
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := op(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSetWriters: 2 and 4 writers, each its own Store, Set one name
// (b.N Sets in all); the floor's writers contend on its flock the same
// way.
func BenchmarkSetWriters(b *testing.B)      { benchWriters(b, true) }
func BenchmarkSetWritersFloor(b *testing.B) { benchWriters(b, false) }

func benchWriters(b *testing.B, ours bool) {
	for _, k := range []int{2, 4} {
		b.Run("writers="+strconv.Itoa(k), func(b *testing.B) {
			r := newSetRig(b, b.TempDir(), b.TempDir(), k)
			b.ResetTimer()
			if err := r.writers(ours, k, b.N); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// writers makes n Sets with k concurrent writers, ours or the floor's.
func (r *setRig) writers(ours bool, k, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, k)
	for i := range k {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				var err error
				if ours {
					err = r.ours(i)
				} else {
					err = r.floor()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func BenchmarkUpdate(b *testing.B) {
	dir, key := b.TempDir(), newKeyFile(b, false)
	s := openStore(b, dir, key)
	ctx := context.Background()
	require.NoError(b, s.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "0"}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Update(ctx, "server", increment); err != nil {
			b.Fatal(err)
		}
	}
}

// --- Scale: the cost does not grow with the number of records ---------------

func BenchmarkScale(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run("GetHit/records="+strconv.Itoa(n), func(b *testing.B) {
			s := hitStore(b, n)
			ctx := context.Background()
			for b.Loop() {
				sink, _ = s.Get(ctx, "rec-5")
			}
		})
		b.Run("Set/records="+strconv.Itoa(n), func(b *testing.B) {
			dir, key := b.TempDir(), newKeyFile(b, false)
			fillRecordsWith(b, dir, key, n, tokenAuth(0))
			s := openStore(b, dir, key)
			ctx, a := context.Background(), tokenAuth(0)
			for b.Loop() {
				if err := s.Set(ctx, "rec-0", a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// --- Memory per cached record --------------------------------------------------

const memRecords = 2000

// BenchmarkMemoryPerCachedRecord reports the heap that 2,000 cached
// records of the 2 KiB token hold, per record; its floor, the same tokens
// in a bare map.
// One measurement per run, whatever b.N: it costs 2,000 decryptions.
func BenchmarkMemoryPerCachedRecord(b *testing.B) {
	per := memoryOurs(b)
	for b.Loop() {
	}
	b.ReportMetric(per, "B/record")
}

func BenchmarkMemoryPerCachedRecordFloor(b *testing.B) {
	per := memoryFloor()
	for b.Loop() {
	}
	b.ReportMetric(per, "B/record")
}

func memoryOurs(t testing.TB) float64 {
	dir, key := t.TempDir(), newKeyFile(t, false)
	fillRecordsWith(t, dir, key, memRecords, tokenAuth(0))
	ctx := context.Background()
	s := openStore(t, dir, key, filestore.WithoutWatcher())
	defer s.Close()
	before := heapAfterGC()
	for i := range memRecords {
		if _, err := s.Get(ctx, "rec-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	after := heapAfterGC()
	runtime.KeepAlive(s)
	return float64(after-before) / memRecords
}

// memoryFloor: the same tokens, each in its own memory, in a bare map.
func memoryFloor() float64 {
	auth := tokenAuth(0)
	before := heapAfterGC()
	m := make(map[string]sessionstore.AuthObject)
	for i := range memRecords {
		name := "rec-" + strconv.Itoa(i)
		a := auth
		a.AccessToken = name + auth.AccessToken[len(name):] // a new string
		a.RefreshToken = strings.Clone(a.RefreshToken)
		a.TokenType = strings.Clone(a.TokenType)
		a.Scope = strings.Clone(a.Scope)
		a.Ref.Type = strings.Clone(a.Ref.Type)
		a.TransferToken = strings.Clone(a.TransferToken)
		m[name] = a
	}
	after := heapAfterGC()
	runtime.KeepAlive(m)
	return float64(after-before) / memRecords
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
