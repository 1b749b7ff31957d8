package filestore_test

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/filestore"
)

var (
	perf          = flag.Bool("perf", false, "run TestPerformanceTargets: each operation beside its floor, interleaved, against the performance targets (docs/PERFORMANCE.md)")
	perfRounds    = flag.Int("perf.rounds", 5, "interleaved rounds per row of the -perf report (medians are reported)")
	perfRounds10k = flag.Int("perf.rounds10k", 3, "rounds of the 10,000-record rekey rows of the -perf report (each takes about a minute)")
)

// --- Rekey ----------------------------------------------------------------------

func BenchmarkRotate(b *testing.B)      { benchRotate(b, true) }
func BenchmarkRotateFloor(b *testing.B) { benchRotate(b, false) }

func benchRotate(b *testing.B, ours bool) {
	for _, n := range []int{1000, 10_000} {
		for _, j := range []int{1, 2} {
			b.Run(fmt.Sprintf("records=%d/j=%d", n, j), func(b *testing.B) {
				r := newRekeyRig(b, n)
				for b.Loop() {
					if err := r.run(ours, j); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// A rekeyRig holds n records of the 2 KiB token twice: in a store that
// filestore.Rotate rotates, and in a directory that the floor reseals.
type rekeyRig struct {
	oursDir, oursKey string
	floorDir         string
	floorFiles       []string
	floorID          age.Identity
	floorRecip       age.Recipient
}

func newRekeyRig(t testing.TB, n int) *rekeyRig {
	r := &rekeyRig{oursDir: t.TempDir(), oursKey: newKeyFile(t, false), floorDir: t.TempDir()}
	fillRecordsWith(t, r.oursDir, r.oursKey, n, tokenAuth(0))
	floorKey := newKeyFile(t, false)
	fillRecordsWith(t, r.floorDir, floorKey, n, tokenAuth(0))
	kf, err := os.ReadFile(floorKey)
	require.NoError(t, err)
	ids, err := age.ParseIdentities(bytes.NewReader(kf))
	require.NoError(t, err)
	r.floorID, r.floorRecip = ids[0], ids[0].(*age.X25519Identity).Recipient()
	for i := range n {
		r.floorFiles = append(r.floorFiles, "rec-"+strconv.Itoa(i)+".age")
	}
	return r
}

func (r *rekeyRig) run(ours bool, j int) error {
	if ours {
		_, err := filestore.Rotate(context.Background(), r.oursKey, []string{r.oursDir}, filestore.RotateOptions{Workers: j})
		return err
	}
	return r.floor(j)
}

// floor is the floor of a rekey: for each record, with j workers, read
// it, age.Decrypt, age.Encrypt (to a key of the same kind: here the same
// one, so that rounds can repeat), and write it durably (temp file,
// fsync, rename, directory fsync). The listing is not timed.
func (r *rekeyRig) floor(j int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, j)
	for range j {
		wg.Go(func() {
			buf := make([]byte, 0, 8192)
			var out bytes.Buffer
			for {
				i := int(next.Add(1)) - 1
				if i >= len(r.floorFiles) {
					return
				}
				if err := r.floorOne(r.floorFiles[i], buf, &out); err != nil {
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

func (r *rekeyRig) floorOne(name string, buf []byte, out *bytes.Buffer) error {
	ct, err := floorReadFile(filepath.Join(r.floorDir, name), buf)
	if err != nil {
		return err
	}
	pt, err := floorDecrypt(ct, r.floorID)
	if err != nil {
		return err
	}
	out.Reset()
	w, err := age.Encrypt(out, r.floorRecip)
	if err != nil {
		return err
	}
	if _, err := w.Write(pt); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return floorDurableWrite(r.floorDir, name, "."+name+".tmp-0", out.Bytes())
}

// --- The report -------------------------------------------------------------------

// A perfRow is one line of the report.
type perfRow struct {
	op, ours, floor, ratio, target string
	met                            bool
}

// TestPerformanceTargets measures each operation beside its floor (see
// docs/PERFORMANCE.md, "The targets"), in -perf.rounds interleaved rounds,
// and prints the medians and their ratio beside the target. It is a
// report, not a test that fails on speed; it takes a few minutes:
//
//	go test ./filestore -run TestPerformanceTargets -perf -v -timeout 20m
func TestPerformanceTargets(t *testing.T) {
	if !*perf {
		t.Skip("a performance report: run with -perf")
	}
	rounds := *perfRounds
	if !flagSet("test.benchtime") { // the benchmarks' pairs: enough for a stable ns/op
		old := flag.Lookup("test.benchtime").Value.String()
		require.NoError(t, flag.Set("test.benchtime", "300ms"))
		t.Cleanup(func() { flag.Set("test.benchtime", old) })
	}
	var rows []perfRow
	add := func(r perfRow) {
		t.Logf("%s: ours %s, floor %s, %s (target %s): %v", r.op, r.ours, r.floor, r.ratio, r.target, met(r.met))
		rows = append(rows, r)
	}
	start := time.Now()

	// Benchmarks beside their floors.
	for _, p := range []struct {
		op          string
		ours, floor func(*testing.B)
		target      float64
		zeroAllocs  bool
	}{
		{"Get, cache hit", BenchmarkGetHit, BenchmarkGetHitFloor, 1.5, true},
		{"TokenSource(...).Token(), valid token", tokenSourceOurs, BenchmarkTokenSourceFloor, 2, true},
		{"Get, cache hit, WithoutWatcher", BenchmarkGetHitNoWatcher, BenchmarkGetHitNoWatcherFloor, 2, false},
		{"cold start: Open + Get + Close, in-process", BenchmarkColdStart, BenchmarkColdStartFloor, 1.10, false},
	} {
		res := benchRounds(rounds, p.ours, p.floor)
		ratio, i := ratios(res[0], res[1])
		o, f := res[0][i], res[1][i] // the median round
		allocs := o.AllocsPerOp()
		r := perfRow{op: p.op, ours: fmt.Sprintf("%v, %d allocs", dur(nsOf(o)), allocs), floor: fmt.Sprintf("%v, %d allocs", dur(nsOf(f)), f.AllocsPerOp()),
			ratio: fmt.Sprintf("%.2f×", ratio), target: fmt.Sprintf("≤ %.2f×", p.target), met: ratio <= p.target}
		if p.zeroAllocs {
			r.target += ", 0 allocs"
			r.met = r.met && allocs == 0
		}
		add(r)
	}

	// Get hits from 2 goroutines against 1: the speedup.
	{
		res := benchRounds(rounds, getHitParallel(true, 1), getHitParallel(true, 2), getHitParallel(false, 1), getHitParallel(false, 2))
		ours, i := ratios(res[0], res[1])
		floor, j := ratios(res[2], res[3])
		add(perfRow{op: "Get, cache hit: 2 goroutines' throughput / 1's",
			ours:  fmt.Sprintf("%v → %v per op: %.2f×", dur(nsOf(res[0][i])), dur(nsOf(res[1][i])), ours),
			floor: fmt.Sprintf("%v → %v per op: %.2f×", dur(nsOf(res[2][j])), dur(nsOf(res[3][j])), floor),
			ratio: fmt.Sprintf("%.2f× (ours)", ours), target: "≥ 1.80×", met: ours >= 1.8})
	}

	// Set waits on fsync, whose cost drifts from second to second:
	// alternate single operations, so that both see the same disk.
	for _, where := range []string{"disk", "tmpfs"} {
		d, ok := setDirs(t)[where]
		if !ok {
			add(perfRow{op: "Set (" + where + ")", ours: "no tmpfs on /dev/shm", ratio: "—", target: "≤ 1.25×"})
			continue
		}
		target, pairs := 1.10, 400
		if where == "tmpfs" {
			target, pairs = 1.25, 300
		}
		r := newSetRig(t, d[0], d[1], 1)
		o, f, ratio := alternate(t, rounds, pairs, func() error { return r.ours(0) }, r.floor)
		add(perfRow{op: fmt.Sprintf("Set (%s, %s; %d alternating pairs ×%d)", where, fsType(d[0]), pairs, rounds),
			ours: dur(o).String(), floor: dur(f).String(), ratio: fmt.Sprintf("%.2f×", ratio),
			target: fmt.Sprintf("≤ %.2f×", target), met: ratio <= target})
	}
	add(syscallRow(t))

	// Writers on one name, each with its own Store, against the floor's
	// writers contending on its flock. A round alternates batches of n
	// Sets, ours and the floor's, so that both see the same disk.
	const batches = 8
	for _, where := range []string{"disk", "tmpfs"} {
		d, ok := setDirs(t)[where]
		if !ok {
			continue
		}
		for _, k := range []int{2, 4} {
			n := 100
			if where == "tmpfs" {
				n = 300
			}
			r := newSetRig(t, d[0], d[1], k)
			var ours, floor, ratios []float64
			for i := range rounds {
				var to, tf time.Duration
				for b := range batches {
					for _, side := range order(i + b) {
						t0 := time.Now()
						require.NoError(t, r.writers(side, k, n))
						if side {
							to += time.Since(t0)
						} else {
							tf += time.Since(t0)
						}
					}
				}
				ours, floor = append(ours, batches*float64(n)/to.Seconds()), append(floor, batches*float64(n)/tf.Seconds())
				ratios = append(ratios, tf.Seconds()/to.Seconds())
			}
			i := medianIndex(ratios)
			ratio := ratios[i]
			add(perfRow{op: fmt.Sprintf("%d writers on one name (%s, %d batches of %d Sets ×%d)", k, where, batches, n, rounds),
				ours: fmt.Sprintf("%.0f Sets/s", ours[i]), floor: fmt.Sprintf("%.0f Sets/s", floor[i]),
				ratio: fmt.Sprintf("%.2f× throughput", ratio), target: "≥ 0.95×", met: ratio >= 0.95})
		}
	}

	for _, r := range visibilityRows(t, rounds, 200) {
		add(r)
	}

	// Rekey wall time, with the floor's same parallelism.
	for _, n := range []int{1000, 10_000} {
		rr := rounds
		if n == 10_000 {
			rr = *perfRounds10k
		}
		r := newRekeyRig(t, n)
		for _, j := range []int{1, 2} {
			var ours, floor, ratios []float64
			for i := range rr {
				var to, tf time.Duration
				for _, side := range order(i) {
					t0 := time.Now()
					require.NoError(t, r.run(side, j))
					if side {
						to = time.Since(t0)
					} else {
						tf = time.Since(t0)
					}
				}
				ours, floor = append(ours, float64(n)/to.Seconds()), append(floor, float64(n)/tf.Seconds())
				ratios = append(ratios, to.Seconds()/tf.Seconds())
			}
			i := medianIndex(ratios)
			ratio := ratios[i]
			add(perfRow{op: fmt.Sprintf("rekey %d records, -j %d (×%d)", n, j, rr),
				ours: fmt.Sprintf("%.0f rec/s", ours[i]), floor: fmt.Sprintf("%.0f rec/s", floor[i]),
				ratio: fmt.Sprintf("%.2f× wall time", ratio), target: "≤ 1.20×", met: ratio <= 1.2})
		}
	}

	// Memory per cached record, against the same token in a bare map.
	{
		var ours, floor, diffs []float64
		for i := range rounds {
			for _, side := range order(i) {
				if side {
					ours = append(ours, memoryOurs(t))
				} else {
					floor = append(floor, memoryFloor())
				}
			}
			diffs = append(diffs, ours[i]-floor[i])
		}
		i := medianIndex(diffs)
		diff := diffs[i]
		add(perfRow{op: fmt.Sprintf("memory per cached record (%d records)", memRecords),
			ours: fmt.Sprintf("%.0f B", ours[i]), floor: fmt.Sprintf("%.0f B", floor[i]),
			ratio: fmt.Sprintf("floor %+.0f B", diff), target: "≤ floor + 256 B", met: diff <= 256})
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "\noperation\tours\tfloor\tratio (median of rounds)\ttarget\tmet\n")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.op, r.ours, r.floor, r.ratio, r.target, met(r.met))
	}
	w.Flush()
	fmt.Printf("(medians of %d interleaved rounds; %s %s/%s, %d CPUs; took %v)\n", rounds,
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), time.Since(start).Round(time.Second))
}

func tokenSourceOurs(b *testing.B) { BenchmarkTokenSource(b) }

// benchRounds runs the benchmarks one after another, rounds times,
// starting each round with the next one (ours first, then the floor
// first, ...), and returns each one's results.
func benchRounds(rounds int, fs ...func(*testing.B)) [][]testing.BenchmarkResult {
	res := make([][]testing.BenchmarkResult, len(fs))
	for r := range rounds {
		for i := range fs {
			k := (i + r) % len(fs)
			res[k] = append(res[k], testing.Benchmark(fs[k]))
		}
	}
	return res
}

func nsOf(r testing.BenchmarkResult) float64 {
	return float64(r.T.Nanoseconds()) / float64(max(r.N, 1))
}

// ratios returns the median of the rounds' ratios a/b, and its round.
func ratios(a, b []testing.BenchmarkResult) (float64, int) {
	var rs []float64
	for i := range a {
		rs = append(rs, nsOf(a[i])/nsOf(b[i]))
	}
	i := medianIndex(rs)
	return rs[i], i
}

// medianIndex returns the index of the median of xs (the upper one of an
// even number).
func medianIndex(xs []float64) int {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(xs[a], xs[b]) })
	return idx[len(idx)/2]
}

// alternate times ours and floor by single operations, alternating (which
// goes first alternates too), pairs per round; it returns the mean times
// and the ratio of the round whose ratio is the median.
func alternate(t *testing.T, rounds, pairs int, ours, floor func() error) (o, f, ratio float64) {
	var oo, ff, rs []float64
	for range rounds {
		var to, tf time.Duration
		for i := range pairs {
			for _, side := range order(i) {
				t0 := time.Now()
				if side {
					require.NoError(t, ours())
					to += time.Since(t0)
				} else {
					require.NoError(t, floor())
					tf += time.Since(t0)
				}
			}
		}
		oo, ff = append(oo, float64(to.Nanoseconds())/float64(pairs)), append(ff, float64(tf.Nanoseconds())/float64(pairs))
		rs = append(rs, float64(to)/float64(tf))
	}
	i := medianIndex(rs)
	return oo[i], ff[i], rs[i]
}

// order is ours (true) then the floor in even rounds, the other way in odd ones.
func order(i int) []bool {
	if i%2 == 0 {
		return []bool{true, false}
	}
	return []bool{false, true}
}

func median[T float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func dur(ns float64) time.Duration {
	d := time.Duration(ns)
	switch {
	case d < time.Microsecond:
		return d.Round(time.Nanosecond / 10)
	case d < time.Millisecond:
		return d.Round(10 * time.Nanosecond)
	}
	return d.Round(time.Microsecond)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func flagSet(name string) (set bool) {
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
