package filestore_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/filestore"
)

// The multi-process tests re-execute the test binary: TestMain runs the
// child's role instead of the tests when childEnv is set.
const childEnv = "SESSIONSTORE_TEST_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	os.Exit(code)
}

// cleanups run after every test of the process (fixtures shared by
// benchmarks).
var cleanups []func()

// childSpec is what a child needs to know.
type childSpec struct {
	role, dir, key, name, mode string
	n                          int
	url                        string // the oauthtest server, for token children
}

func (c childSpec) env() []string {
	return []string{childEnv + "=" + c.role, "SS_DIR=" + c.dir, "SS_KEY=" + c.key,
		"SS_NAME=" + c.name, "SS_MODE=" + c.mode, "SS_N=" + strconv.Itoa(c.n), "SS_URL=" + c.url}
}

// startChild starts a child process. Its stdout is returned line by line;
// its stderr goes to the test log. It is killed when the test ends.
func startChild(t *testing.T, ctx context.Context, c childSpec) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), c.env()...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = testWriter{t}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(stdout)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("child: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// expectLine reads the child's next line and checks its first word.
func expectLine(t *testing.T, sc *bufio.Scanner, word string) []string {
	t.Helper()
	require.True(t, sc.Scan(), "child ended before %q: %v", word, sc.Err())
	f := strings.Fields(sc.Text())
	require.NotEmpty(t, f)
	require.Equal(t, word, f[0], "child said %q", sc.Text())
	return f
}

func runChild(role string) int {
	c := childSpec{role: role, dir: os.Getenv("SS_DIR"), key: os.Getenv("SS_KEY"),
		name: os.Getenv("SS_NAME"), mode: os.Getenv("SS_MODE"), url: os.Getenv("SS_URL")}
	c.n, _ = strconv.Atoi(os.Getenv("SS_N"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var opts []filestore.Option
	if m, _, _ := strings.Cut(c.mode, "/"); m == "nowatch" { // "nowatch" or "nowatch/100us"
		opts = append(opts, filestore.WithoutWatcher())
	}
	s, err := filestore.Open(c.dir, append(opts, filestore.WithKeyFile(c.key))...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	if err := children[role](ctx, s, c); err != nil {
		fmt.Fprintln(os.Stderr, role+":", err)
		return 1
	}
	return 0
}

var children = map[string]func(context.Context, *filestore.Store, childSpec) error{
	// increment: n Updates of the counter.
	"increment": func(ctx context.Context, s *filestore.Store, c childSpec) error {
		for range c.n {
			if _, err := s.Update(ctx, c.name, increment); err != nil {
				return err
			}
		}
		return nil
	},
	// reader: report each new value of the record with the time it was
	// seen, until it has seen n values after the first.
	"reader": func(ctx context.Context, s *filestore.Store, c childSpec) error {
		last := ""
		for i := range 3 { // warm: cache, validate (starts the watcher), then trusted
			a, err := s.Get(ctx, c.name)
			if err != nil {
				return err
			}
			last = a.AccessToken
			for i == 1 && c.mode == "watch" && !s.Watching() && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}
		fmt.Println("ready")
		// Sleep between polls, as a busy server would call Get now and
		// then: a reader that spins takes a whole core from its own
		// watcher on a 2-core machine. time.Sleep(50 µs) sleeps ~1 ms on
		// Linux, so this polls about every millisecond: the -perf report
		// measures visibility with readers that really poll at their
		// period (perf_linux_test.go).
		for seen := 0; seen < c.n; time.Sleep(50 * time.Microsecond) {
			a, err := s.Get(ctx, c.name)
			if err != nil {
				return err
			}
			if a.AccessToken != last {
				now := time.Now().UnixNano()
				last = a.AccessToken
				seen++
				fmt.Println("seen", last, now)
			}
		}
		return nil
	},
	// writer: Set ever larger values until killed.
	"writer": func(ctx context.Context, s *filestore.Store, c childSpec) error {
		for i := 0; ; i++ {
			if err := s.Set(ctx, c.name, bigValue(i)); err != nil {
				return err
			}
			if i == 0 {
				fmt.Println("ready")
			}
		}
	},
}

// bigValue is a value whose parts must agree: a torn record could not.
func bigValue(i int) sessionstore.AuthObject {
	return sessionstore.AuthObject{AccessToken: strconv.Itoa(i), RefreshToken: strings.Repeat("r", 100+i%4000)}
}

func TestProcessesNoLostUpdates(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := ctxT(t)
		dir, key := t.TempDir(), newKeyFile(t, false)
		const procs, each = 6, 50
		var cmds []*exec.Cmd
		for range procs {
			cmd, _ := startChild(t, ctx, childSpec{role: "increment", dir: dir, key: key, name: "counter", mode: m.name, n: each})
			cmds = append(cmds, cmd)
		}
		for _, cmd := range cmds {
			require.NoError(t, cmd.Wait())
		}
		s := openStore(t, dir, key)
		got, err := s.Get(ctx, "counter")
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(procs*each), got.AccessToken, "%d processes x %d increments", procs, each)
	})
}

// visibility measures, over n writes, the time from Set returning in this
// process to a Get in a child process seeing the value.
func visibility(t *testing.T, m mode, n int) []time.Duration {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	w := openStore(t, dir, key)
	require.NoError(t, w.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "start"}))
	_, sc := startChild(t, ctx, childSpec{role: "reader", dir: dir, key: key, name: "server", mode: m.name, n: n})
	expectLine(t, sc, "ready")
	lat := make([]time.Duration, 0, n)
	for i := range n {
		v := "v" + strconv.Itoa(i)
		require.NoError(t, w.Set(ctx, "server", sessionstore.AuthObject{AccessToken: v}))
		done := time.Now()
		f := expectLine(t, sc, "seen")
		require.Len(t, f, 3)
		require.Equal(t, v, f[1], "every write is seen, in order")
		seenAt, err := strconv.ParseInt(f[2], 10, 64)
		require.NoError(t, err)
		lat = append(lat, time.Unix(0, seenAt).Sub(done))
	}
	return lat
}

func TestProcessesSeeEachWrite(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		lat := visibility(t, m, 40)
		assert.Len(t, lat, 40)
		p50, p99 := percentiles(lat)
		t.Logf("%s: cross-process visibility over %d writes: p50 %v, p99 %v", m.name, len(lat), p50, p99)
	})
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}

func BenchmarkCrossProcessVisibility(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			var lat []time.Duration
			n := max(b.N, 40)
			b.ResetTimer()
			runAsT(b, func(t *testing.T) { lat = visibility(t, m, n) })
			p50, p99 := percentiles(lat)
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		})
	}
}

// runAsT runs f as a subtest-like *testing.T inside a benchmark.
func runAsT(b *testing.B, f func(t *testing.T)) {
	b.Helper()
	ok := testing.RunTests(func(pat, str string) (bool, error) { return true, nil },
		[]testing.InternalTest{{Name: "visibility", F: f}})
	if !ok {
		b.Fatal("visibility run failed")
	}
}

// A writer killed (SIGKILL) at random moments never leaves a torn record:
// the record always opens and holds a whole value, and the next write
// removes the temp file the dead writer left.
func TestProcessesCrashSafety(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	rng := rand.New(rand.NewPCG(1, 2))
	leftovers := 0
	for round := range 25 {
		cmd, sc := startChild(t, ctx, childSpec{role: "writer", dir: dir, key: key, name: "server"})
		expectLine(t, sc, "ready")
		time.Sleep(time.Duration(rng.IntN(20_000)) * time.Microsecond) // a random moment, not synchronisation
		require.NoError(t, cmd.Process.Kill())
		cmd.Wait()

		if _, err := os.Stat(filepath.Join(dir, ".server.tmp-0")); err == nil {
			leftovers++
		}
		s := openStore(t, dir, key)
		got, err := s.Get(ctx, "server")
		require.NoError(t, err, "round %d: the record opens after a crash", round)
		i, err := strconv.Atoi(got.AccessToken)
		require.NoError(t, err)
		assert.True(t, bigValue(i).Equal(got), "round %d: a whole value, got %v", round, got)
		require.NoError(t, s.Set(ctx, "server", bigValue(i+1)))
		assertNoTempFiles(t, dir)
		s.Close()
	}
	t.Logf("25 kills, %d left a temp file behind (removed by the next write)", leftovers)
}

// 10,000 records in one directory: Open reads none of them, a Get reads
// only its own, a Set only its own, and one watch covers them all. Every
// other record is garbage, which any read of it would report.
func TestScaleTenThousandRecords(t *testing.T) {
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	for i := range 10_000 {
		garbage := []byte("not a record " + strconv.Itoa(i))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "rec-"+strconv.Itoa(i)+".age"), garbage, 0o600))
	}
	w := openStore(t, dir, key, filestore.WithoutWatcher())
	require.NoError(t, w.Set(ctx, "rec-5000", sampleAuth()), "a Set reads only its own record")
	s := openStore(t, dir, key)
	warm(t, s, "rec-5000", true)
	watched := s.WatchList() // the process's watcher, shared with other Stores
	for _, d := range []string{dir, filepath.Dir(key), filepath.Dir(dir)} {
		assert.Contains(t, watched, d)
	}
	for _, w := range watched {
		assert.False(t, strings.HasPrefix(w, dir+string(filepath.Separator)), "a watch per record: %s", w)
	}
	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 10_000)
	_, err = s.Get(ctx, "rec-42")
	assert.ErrorIs(t, err, sessionstore.ErrTampered, "the others are garbage indeed")
}

// bufioChild is a child process with its stdin and its stdout by lines.
type bufioChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}
