//go:build linux

package filestore_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// The Linux-only parts of the -perf report: cross-process visibility
// timed from the rename (inotify), and the system calls of one Set
// (strace).

const tmpfsMagic = 0x01021994

// tmpfsDir returns a fresh private directory on /dev/shm if that is a
// tmpfs, removed when the test ends.
func tmpfsDir(t testing.TB) (string, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != tmpfsMagic {
		return "", false
	}
	dir, err := os.MkdirTemp("/dev/shm", "sessionstore-perf-")
	if err != nil {
		return "", false
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir, os.Chmod(dir, 0o700) == nil
}

// fsType names dir's file system.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "?"
	}
	switch st.Type {
	case 0xef53:
		return "ext4"
	case tmpfsMagic:
		return "tmpfs"
	case 0x58465342:
		return "xfs"
	case 0x9123683e:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("fs %#x", st.Type)
}

func init() {
	// pollreader: get the record in a busy loop (yielding with
	// runtime.Gosched, never sleeping: time.Sleep(50µs) sleeps ~1 ms
	// here), or paced by a pacer if the mode names a period
	// ("watch/100us", "nowatch/100us": a time.Ticker under 1 ms ticks
	// about every millisecond in an idle process), and report each new
	// value with the time it was seen; at the end, how often it really
	// polled.
	children["pollreader"] = func(ctx context.Context, s *filestore.Store, c childSpec) error {
		mode, every, _ := strings.Cut(c.mode, "/")
		var p *pacer
		if every != "" {
			d, err := time.ParseDuration(every)
			if err != nil {
				return err
			}
			p = startPacer(d) // the child exits when this returns
		}
		last := ""
		for i := range 3 { // warm: cache, validate (starts the watcher), then trusted
			a, err := s.Get(ctx, c.name)
			if err != nil {
				return err
			}
			last = versionOf(a.AccessToken)
			for i == 1 && mode == "watch" && !s.Watching() && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}
		fmt.Println("ready")
		start, polls := time.Now(), 0
		for seen := 0; seen < c.n; polls++ {
			a, err := s.Get(ctx, c.name)
			if err != nil {
				return err
			}
			if v := versionOf(a.AccessToken); v != last {
				now := time.Now().UnixNano()
				last = v
				seen++
				fmt.Println("seen", v, now)
			}
			if p != nil {
				p.wait()
			} else {
				runtime.Gosched()
			}
		}
		fmt.Println("polled", polls, time.Since(start).Nanoseconds())
		return nil
	}
	// inotifyreader: the floor reader. A blocking read of a raw inotify
	// watch on the directory, then read the record, age.Decrypt, decode.
	children["inotifyreader"] = func(ctx context.Context, _ *filestore.Store, c childSpec) error {
		kf, err := os.ReadFile(c.key)
		if err != nil {
			return err
		}
		ids, err := age.ParseIdentities(strings.NewReader(string(kf)))
		if err != nil {
			return err
		}
		path := filepath.Join(c.dir, c.name+".age")
		buf := make([]byte, 0, 8192)
		a, err := floorOpen(path, buf, ids...)
		if err != nil {
			return err
		}
		last := versionOf(a.AccessToken)
		fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
		if err != nil {
			return err
		}
		if _, err := syscall.InotifyAddWatch(fd, c.dir, syscall.IN_MOVED_TO); err != nil {
			return err
		}
		fmt.Println("ready")
		evBuf := make([]byte, 64<<10)
		for seen := 0; seen < c.n; {
			names, err := readInotify(fd, evBuf)
			if err != nil {
				return err
			}
			if !slices.Contains(names, c.name+".age") {
				continue
			}
			a, err := floorOpen(path, buf, ids...)
			if err != nil {
				return err
			}
			if v := versionOf(a.AccessToken); v != last {
				now := time.Now().UnixNano()
				last = v
				seen++
				fmt.Println("seen", v, now)
			}
		}
		return nil
	}
	// sets: two Sets to warm up, then n Sets between two markers that
	// strace shows (a stat of a path that does not exist).
	children["sets"] = func(ctx context.Context, s *filestore.Store, c childSpec) error {
		for range 2 {
			if err := s.Set(ctx, c.name, tokenAuth(0)); err != nil {
				return err
			}
		}
		a := tokenAuth(1)
		os.Lstat(straceBegin)
		for range c.n {
			if err := s.Set(ctx, c.name, a); err != nil {
				return err
			}
		}
		os.Lstat(straceEnd)
		return nil
	}
}

const (
	straceBegin = "/sessionstore-strace-begin"
	straceEnd   = "/sessionstore-strace-end"
)

// versionOf is the part of an access token before its first dot: the
// visibility test writes "v<i>.<jwt>".
func versionOf(tok string) string {
	v, _, _ := strings.Cut(tok, ".")
	return v
}

// readInotify blocks until inotify events arrive on fd and returns their
// names. It returns an error once the watch is removed (IN_IGNORED).
func readInotify(fd int, buf []byte) ([]string, error) {
	n, err := syscall.Read(fd, buf)
	for err == syscall.EINTR {
		n, err = syscall.Read(fd, buf)
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for off := 0; off+syscall.SizeofInotifyEvent <= n; {
		mask := binary.NativeEndian.Uint32(buf[off+4:])
		l := int(binary.NativeEndian.Uint32(buf[off+12:]))
		name := strings.TrimRight(string(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+l]), "\x00")
		if mask&syscall.IN_IGNORED != 0 {
			return nil, errors.New("inotify watch removed")
		}
		names = append(names, name)
		off += syscall.SizeofInotifyEvent + l
	}
	return names, nil
}

// watchRenames reports the time at which each rename onto dir/name lands,
// as seen by a raw inotify watch (IN_MOVED_TO) read by a goroutine of
// this process, blocked in read(2) on its own thread.
func watchRenames(t *testing.T, dir, name string) <-chan time.Time {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	require.NoError(t, err)
	wd, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_MOVED_TO)
	require.NoError(t, err)
	ch := make(chan time.Time, 1<<16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		buf := make([]byte, 64<<10)
		for {
			names, err := readInotify(fd, buf)
			now := time.Now()
			if err != nil {
				return
			}
			for _, n := range names {
				if n == name {
					ch <- now
				}
			}
		}
	}()
	t.Cleanup(func() {
		syscall.InotifyRmWatch(fd, uint32(wd)) // wakes the reader with IN_IGNORED
		<-done
		syscall.Close(fd)
	})
	return ch
}

// visibilityRun has a child process of role read the record "server" of
// dir while this process Sets it n times with w, and returns, for each
// value, the time from its rename landing to the child seeing it; for a
// polling reader, also its mean polling period.
func visibilityRun(t *testing.T, w *filestore.Store, renames <-chan time.Time, dir, key, role, mode string, n int) (lat []time.Duration, period time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, sc := startChild(t, ctx, childSpec{role: role, dir: dir, key: key, name: "server", mode: mode, n: n})
	expectLine(t, sc, "ready")
	for i := range n {
		v := "v" + strconv.Itoa(i)
		a := tokenAuth(uint64(i))
		a.AccessToken = v + "." + a.AccessToken
		require.NoError(t, w.Set(ctx, "server", a))
		var landed time.Time
		select {
		case landed = <-renames:
		case <-time.After(10 * time.Second):
			t.Fatal("no inotify event for the rename")
		}
		f := expectLine(t, sc, "seen")
		require.Len(t, f, 3)
		require.Equal(t, v, f[1], "every write is seen, in order")
		seenAt, err := strconv.ParseInt(f[2], 10, 64)
		require.NoError(t, err)
		lat = append(lat, time.Unix(0, seenAt).Sub(landed))
	}
	if role == "pollreader" {
		f := expectLine(t, sc, "polled")
		polls, _ := strconv.ParseInt(f[1], 10, 64)
		ns, _ := strconv.ParseInt(f[2], 10, 64)
		period = time.Duration(ns / max(polls, 1))
	}
	require.NoError(t, cmd.Wait())
	return lat, period
}

// visibilityRows measures cross-process visibility: per round, n writes
// read by each of our readers (a Store polled every 100 µs, and one polled
// in a busy loop; each with its watcher and WithoutWatcher) and n
// read by the floor reader, one reader at a time (a busy reader would take
// a core from the other).
func visibilityRows(t *testing.T, rounds, n int) []perfRow {
	dir, key := t.TempDir(), newKeyFile(t, false)
	w := openStore(t, dir, key)
	ctx := context.Background()
	require.NoError(t, w.Set(ctx, "server", tokenAuth(0)))
	renames := watchRenames(t, dir, "server.age")
	// The target's row is judged with readers that poll at a stated
	// period; a reader spinning on Get is ours, beyond it.
	readers := []struct{ name, mode string }{
		{"cross-process visibility, reader polling every 100 µs", "watch/100us"},
		{"cross-process visibility, WithoutWatcher, reader polling every 100 µs", "nowatch/100us"},
		{"beyond the targets: cross-process visibility, reader spinning on Get", "watch"},
		{"beyond the targets: cross-process visibility, WithoutWatcher, reader spinning on Get", "nowatch"},
	}
	lats := make([][][]time.Duration, len(readers)) // reader, round → latencies
	periods := make([][]time.Duration, len(readers))
	var floor [][]time.Duration // round → latencies
	for r := range rounds {
		floor = append(floor, nil)
		for k := range len(readers) + 1 {
			i := (k + r) % (len(readers) + 1)
			if i == len(readers) {
				floor[r], _ = visibilityRun(t, w, renames, dir, key, "inotifyreader", "", n)
				continue
			}
			lat, p := visibilityRun(t, w, renames, dir, key, "pollreader", readers[i].mode, n)
			lats[i], periods[i] = append(lats[i], lat), append(periods[i], p)
		}
	}
	var rows []perfRow
	for i, rd := range readers {
		rows = append(rows, visibilityRow(lats[i], floor, fmt.Sprintf("%s (%d rounds × %d writes; it polled every %v, %s)",
			rd.name, rounds, n, round(median(periods[i])), pollHow(rd.mode))))
	}
	return rows
}

func pollHow(mode string) string {
	if strings.Contains(mode, "/") {
		return "paced by nanosleep"
	}
	return "busy loop"
}

// visibilityRow judges ours against the floor as every row of the report
// is judged: the ratio of the p99s of each round, the median of the
// rounds' (and the p50s and p99s of that round). The p99 of every round's
// writes together, whose ratio swings with one slow round, is shown beside
// it.
func visibilityRow(ours, floor [][]time.Duration, op string) perfRow {
	var ratios []float64
	for r := range ours {
		_, o99 := percentiles(ours[r])
		_, f99 := percentiles(floor[r])
		ratios = append(ratios, float64(o99)/float64(f99))
	}
	m := medianIndex(ratios)
	o50, o99 := percentiles(ours[m])
	f50, f99 := percentiles(floor[m])
	_, po99 := percentiles(slices.Concat(ours...))
	_, pf99 := percentiles(slices.Concat(floor...))
	return perfRow{
		op:     op,
		ours:   fmt.Sprintf("p50 %v, p99 %v", round(o50), round(o99)),
		floor:  fmt.Sprintf("p50 %v, p99 %v", round(f50), round(f99)),
		ratio:  fmt.Sprintf("%.2f× (p99; all rounds' writes: %.2f×)", ratios[m], float64(po99)/float64(pf99)),
		target: "p99 ≤ 2× floor",
		met:    ratios[m] <= 2,
	}
}

func round(d time.Duration) time.Duration {
	if d < 100*time.Microsecond && d > -100*time.Microsecond {
		return d.Round(100 * time.Nanosecond)
	}
	return d.Round(time.Microsecond)
}

// StraceCommand is how to count the system calls of Sets by hand:
//
//	go test -c -o /tmp/filestore.test ./filestore
//	mkdir -m 700 /tmp/ss && rekey -init -key /tmp/ss.key   # or any key file
//	for n in 0 1000; do
//	  SESSIONSTORE_TEST_CHILD=sets SS_DIR=/tmp/ss SS_KEY=/tmp/ss.key SS_NAME=server SS_N=$n \
//	    strace -c -f /tmp/filestore.test -test.run='^$' 2>&1 | tail -1
//	done    # (total(1000) - total(0)) / 1000 per Set
//
// syscallRow does it for setsCounted Sets, between the markers the child
// stats, and divides.
func syscallRow(t *testing.T) perfRow {
	const setsCounted = 100
	row := perfRow{op: fmt.Sprintf("Set: system calls (strace -f, %d Sets between markers, per Set)", setsCounted), floor: "11", target: "≤ 20"}
	strace, err := exec.LookPath("strace")
	if err != nil {
		row.ours, row.ratio = "strace not installed", "—"
		return row
	}
	dir, key := t.TempDir(), newKeyFile(t, false)
	// A long-running writer's key file is older than the racy window: it
	// is then checked with two fstatat calls instead of being read.
	time.Sleep(fsutil.RacyWindow() + 50*time.Millisecond)
	out := filepath.Join(t.TempDir(), "strace.out")
	cmd := exec.Command(strace, "-f", "-qq", "-o", out, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childSpec{role: "sets", dir: dir, key: key, name: "server", n: setsCounted}.env()...)
	if b, err := cmd.CombinedOutput(); err != nil {
		row.ours, row.ratio = "strace failed: "+strings.TrimSpace(string(b)), "—"
		return row
	}
	total, counts, err := countSyscalls(out)
	require.NoError(t, err)
	keys := slices.SortedFunc(func(yield func(string) bool) {
		for k := range counts {
			if !yield(k) {
				return
			}
		}
	}, func(a, b string) int { return cmp.Or(counts[b]-counts[a], strings.Compare(a, b)) })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(counts[k])/setsCounted))
	}
	// Not the Set's own: the runtime's threads (sysmon, the garbage
	// collector's workers and so on), its heap growing or being returned,
	// and crypto/rand reseeding its vDSO generator now and then (the
	// floor's age.Encrypt draws from it as much).
	runtimeCalls := 0
	for _, k := range []string{"nanosleep", "futex", "epoll_pwait", "epoll_wait", "sched_yield", "rt_sigreturn", "tgkill", "getpid", "mmap", "munmap", "madvise", "getrandom"} {
		runtimeCalls += counts[k]
	}
	t.Logf("system calls logged during %d Sets, per Set: %.2f (%.2f of them the runtime's and crypto/rand's): %s",
		setsCounted, float64(total)/setsCounted, float64(runtimeCalls)/setsCounted, strings.Join(parts, ", "))
	ours := float64(total-runtimeCalls) / setsCounted
	row.ours = fmt.Sprintf("%.2f (+%.2f the runtime's and crypto/rand's)", ours, float64(runtimeCalls)/setsCounted)
	row.ratio = fmt.Sprintf("%.2f×", ours/11)
	row.met = ours <= 20
	return row
}

// countSyscalls counts the system calls that strace -f logged between the
// markers, by name, every thread's (a call split by another thread's is
// counted once).
func countSyscalls(path string) (int, map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	counts := map[string]int{}
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, straceBegin):
			in = true
			continue
		case strings.Contains(line, straceEnd):
			in = false
			continue
		}
		if !in || strings.Contains(line, "resumed>") || strings.Contains(line, "+++") || strings.Contains(line, "---") {
			continue
		}
		// "1234  name(args) = result"
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		name, _, ok := strings.Cut(fields[1], "(")
		if !ok {
			continue
		}
		counts[name]++
		total++
	}
	return total, counts, sc.Err()
}

// A pacer paces one goroutine's polling loop at a period under a
// millisecond, which Go's timers cannot keep: a runtime with nothing else
// to run waits for its next timer in epoll_wait, whose timeout is in
// whole milliseconds, so a 100 µs time.Ticker ticks about every
// millisecond. A pacer sleeps in nanosleep(2) instead, on its goroutine's
// thread, locked to it for good (the thread ends with the goroutine), with
// 1 ns of timer slack instead of the default 50 µs.
type pacer struct {
	period time.Duration
	next   time.Time
}

// startPacer returns a pacer for the calling goroutine, which must end
// once it is done with it.
func startPacer(period time.Duration) *pacer {
	runtime.LockOSThread()
	syscall.RawSyscall(syscall.SYS_PRCTL, 29, 1, 0) // PR_SET_TIMERSLACK, linux/prctl.h
	return &pacer{period: period, next: time.Now().Add(period)}
}

// wait sleeps until the next period begins (at once if it has begun). A
// late wait does not make the next ones early to catch up.
func (p *pacer) wait() {
	now := time.Now()
	if d := p.next.Sub(now); d > 0 {
		ts := syscall.NsecToTimespec(d.Nanoseconds())
		for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
		}
		now = now.Add(d)
	}
	p.next = now.Add(p.period)
}

// The real period of a loop paced every 100 µs, as ns/op: by a pacer, and
// by a time.Ticker (about 1 ms in a process with nothing else to run).
//
//	go test ./filestore -run '^$' -bench '100us$'
func BenchmarkPacer100us(b *testing.B) {
	p := startPacer(100 * time.Microsecond) // the benchmark's goroutine ends after it
	for b.Loop() {
		p.wait()
	}
}

func BenchmarkTicker100us(b *testing.B) {
	t := time.NewTicker(100 * time.Microsecond)
	defer t.Stop()
	for b.Loop() {
		<-t.C
	}
}
