package etcdstore_test

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/etcdtest"
)

// While the leader of a 3-member cluster is killed and restarted, over and
// over, a host (another process) increments a counter and notes when each
// increment was acknowledged. Readers in this process, one on each member,
// Get the counter every millisecond. No Get returns a value older than a
// write acknowledged more than WithMaxStaleness before the Get began
// (plus the timer's slack: see stalenessSlack).
func TestStalenessBoundAcrossLeaderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-member cluster of processes")
	}
	const maxStaleness = 500 * time.Millisecond
	ctx := ctxT(t)
	cl, err := etcdtest.StartCluster(etcdtest.ClusterConfig{Dir: t.TempDir(), Command: []string{os.Args[0], "-test.run=^$"}, Stderr: testWriter{t}})
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	c := etcdtest.NewClient(t, cl.Endpoints()...)
	prefix, key := etcdtest.Prefix(t), newKeyFile(t)

	writer := startChild(t, ctx, childSpec{role: "ack", endpoints: cl.Endpoints(), prefix: prefix, key: key, name: "counter"})
	writer.expect(t, "ready")
	type ack struct {
		n  int
		at int64 // unix ns
	}
	var acks []ack
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for writer.out.Scan() {
			f := strings.Fields(writer.out.Text())
			if len(f) == 3 && f[0] == "acked" {
				n, _ := strconv.Atoi(f[1])
				at, _ := strconv.ParseInt(f[2], 10, 64)
				acks = append(acks, ack{n, at})
			}
		}
	}()

	type sample struct {
		at int64 // unix ns, taken before the Get
		n  int   // -1: an error
	}
	samples := make([][]sample, len(cl.Members))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, m := range cl.Members {
		s := openOn(t, etcdtest.NewClient(t, m.Endpoint), prefix, etcdstore.WithKeyFile(key), etcdstore.WithMaxStaleness(maxStaleness))
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				at := time.Now().UnixNano()
				n := -1
				if a, err := s.Get(ctx, "counter"); err == nil {
					n, _ = strconv.Atoi(a.AccessToken)
				}
				samples[i] = append(samples[i], sample{at, n})
			}
		})
	}

	_, err = writer.stdin.Write([]byte("go\n"))
	require.NoError(t, err)
	time.Sleep(time.Second)
	for round := range 3 {
		leader, err := cl.Leader(ctx, c)
		require.NoError(t, err)
		require.NoError(t, leader.Kill())
		next, err := cl.Leader(ctx, c)
		require.NoError(t, err)
		t.Logf("round %d: killed leader %s; %s leads", round+1, leader.Name, next.Name)
		time.Sleep(1500 * time.Millisecond)
		require.NoError(t, leader.Restart())
		time.Sleep(time.Second)
	}
	close(stop)
	wg.Wait()
	require.NoError(t, writer.stdin.Close())
	<-wrote
	require.NoError(t, writer.cmd.Wait())
	require.NotEmpty(t, acks)

	bound := maxStaleness + stalenessSlack
	for i, ss := range samples {
		// For each Get that returned n, how long before it began was
		// n+1 acknowledged?
		var worst time.Duration
		var gets, errs int
		j := 0 // acks[j] is the first acknowledged write the Get may not have seen
		for _, smp := range ss {
			if smp.n < 0 {
				errs++
				continue
			}
			gets++
			for j < len(acks) && acks[j].n <= smp.n {
				j++
			}
			if j < len(acks) && acks[j].at < smp.at {
				worst = max(worst, time.Duration(smp.at-acks[j].at))
			}
		}
		t.Logf("reader on %s: %d Gets, %d errors; the oldest value returned missed a write acknowledged %v before",
			cl.Members[i].Name, gets, errs, worst)
		assert.LessOrEqual(t, worst, bound, "reader on %s served a value older than the bound", cl.Members[i].Name)
		assert.Positive(t, gets)
	}
	t.Logf("%d writes acknowledged", len(acks))
}

// stalenessSlack is what the bound allows beyond WithMaxStaleness: the
// Store's timer stops the serving of cached values a little before the
// bound, but a timer can fire late on a loaded machine.
const stalenessSlack = 250 * time.Millisecond
