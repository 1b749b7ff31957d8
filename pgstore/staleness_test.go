package pgstore_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/internal/pgtest"
	"github.com/sessionstore/sessionstore/pgstore"
)

// stalenessSlack is what the bound allows beyond WithMaxStaleness: the
// Store's timer stops the serving of cached values a little before the
// bound, but a timer can fire late on a loaded machine.
const stalenessSlack = 250 * time.Millisecond

// listenerPool is a pool whose own connections are named pool (through
// AfterConnect) while connections made from its config alone, such as a
// Store's listening connection, are named listen: pg_stat_activity tells
// them apart.
func listenerPool(t *testing.T, url, pool, listen string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url + "&application_name=" + listen)
	require.NoError(t, err)
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET application_name = "+pgx.Identifier{pool}.Sanitize())
		return err
	}
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// While the server is restarted and the readers' listening connections
// are ended with pg_terminate_backend, a writer (another process)
// increments a counter and notes when each increment was acknowledged;
// readers in this process (one listening, one WithoutListen) Get the
// counter every millisecond. No acknowledged increment is lost, and no Get
// returns a value older than a write acknowledged more than
// WithMaxStaleness before the Get began (plus stalenessSlack).
func TestStalenessBoundAcrossRestarts(t *testing.T) {
	const maxStaleness = 500 * time.Millisecond
	ctx := ctxT(t)
	c := pgtest.Start(t)
	ns, key := "staleness", newKeyFile(t)

	writer := startChild(t, ctx, childSpec{role: "ack", url: c.URL(), ns: ns, key: key, name: "counter", ttl: 2 * time.Second})
	writer.expect(t, "ready")
	type ack struct {
		n  int
		at int64 // unix ns
	}
	var acks []ack
	unknown := 0
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for writer.out.Scan() {
			f := strings.Fields(writer.out.Text())
			switch {
			case len(f) == 3 && f[0] == "acked":
				n, _ := strconv.Atoi(f[1])
				at, _ := strconv.ParseInt(f[2], 10, 64)
				acks = append(acks, ack{n, at})
			case len(f) == 1 && f[0] == "unknown":
				unknown++
			}
		}
	}()

	type sample struct {
		at int64 // unix ns, taken before the Get
		n  int   // -1: an error
	}
	readers := []string{"listening", "without-listen"}
	samples := make([][]sample, len(readers))
	listening, err := pgstore.Open(ctx, listenerPool(t, c.URL(), "reader-pool", "reader-listen"), ns,
		pgstore.WithKeyFile(key), pgstore.WithMaxStaleness(maxStaleness))
	require.NoError(t, err)
	defer listening.Close()
	polling, err := pgstore.Open(ctx, c.Pool(t), ns, pgstore.WithKeyFile(key), pgstore.WithMaxStaleness(maxStaleness), pgstore.WithoutListen())
	require.NoError(t, err)
	defer polling.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range []*pgstore.Store{listening, polling} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				at := time.Now().UnixNano()
				n := -1
				gctx, cancel := context.WithTimeout(ctx, time.Second)
				if a, err := s.Get(gctx, "counter"); err == nil {
					n, _ = strconv.Atoi(a.AccessToken)
				}
				cancel()
				samples[i] = append(samples[i], sample{at, n})
			}
		})
	}

	_, err = writer.stdin.Write([]byte("go\n"))
	require.NoError(t, err)
	waitFor(t, "the listening reader to serve from its cache", listening.Watching)
	time.Sleep(time.Second)
	terminated := 0
	for round := range 2 {
		c.Restart(t)
		t.Logf("round %d: restarted the server", round+1)
		time.Sleep(time.Second)
		waitFor(t, "the listening connection back", listening.Watching)
		var n int
		require.NoError(t, c.Pool(t).QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = 'reader-listen'`).Scan(&n))
		require.Equal(t, 1, n, "the Store's one listening connection")
		terminated += n
		t.Logf("round %d: terminated the listening connection", round+1)
		time.Sleep(time.Second)
		waitFor(t, "the listening connection back", listening.Watching)
	}
	close(stop)
	wg.Wait()
	require.NoError(t, writer.stdin.Close())
	<-wrote
	require.NoError(t, writer.cmd.Wait())
	require.NotEmpty(t, acks)

	// No acknowledged write lost: each acknowledged increment counts up
	// from the one before, and the stored counter holds them all.
	for i := 1; i < len(acks); i++ {
		require.Greater(t, acks[i].n, acks[i-1].n, "an acknowledged increment was lost: %d after %d", acks[i].n, acks[i-1].n)
	}
	fresh, err := pgstore.Open(ctx, c.Pool(t), ns, pgstore.WithKeyFile(key))
	require.NoError(t, err)
	defer fresh.Close()
	got, err := fresh.Get(ctx, "counter")
	require.NoError(t, err)
	final, err := strconv.Atoi(got.AccessToken)
	require.NoError(t, err)
	t.Logf("%d writes acknowledged, %d of unknown outcome, counter at %d", len(acks), unknown, final)
	assert.Equal(t, acks[len(acks)-1].n, final, "the last acknowledged increment is stored")
	assert.LessOrEqual(t, final-len(acks), unknown, "only increments of unknown outcome beyond the acknowledged ones")

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
		t.Logf("%s reader: %d Gets, %d errors; the oldest value returned missed a write acknowledged %v before",
			readers[i], gets, errs, worst)
		assert.LessOrEqual(t, worst, bound, "the %s reader served a value older than the bound", readers[i])
		assert.Positive(t, gets)
	}
	assert.Equal(t, 2, terminated)
}
