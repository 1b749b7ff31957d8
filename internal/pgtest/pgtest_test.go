package pgtest_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/internal/pgtest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func count(t *testing.T, url, sql string) int {
	t.Helper()
	n, err := tryCount(ctx(t), url, sql)
	require.NoError(t, err)
	return n
}

// tryCount is count for a condition polled from another goroutine: the
// standby may not have replayed the table yet.
func tryCount(ctx context.Context, url, sql string) (int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, sql).Scan(&n)
	return n, err
}

func TestStartExecPoolRole(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	c := pgtest.Start(t, pgtest.Set("log_statement", "all"))
	t.Logf("cluster started in %v", time.Since(begin))

	c.Exec(t, "CREATE TABLE t (v text)")
	c.Exec(t, "INSERT INTO t VALUES ($1)", "plaintext-canary")
	var v string
	require.NoError(t, c.Pool(t).QueryRow(ctx(t), "SELECT v FROM t").Scan(&v))
	assert.Equal(t, "plaintext-canary", v)
	assert.Contains(t, c.Log(), "plaintext-canary", "log_statement=all logs the parameters")

	url := c.CreateRole(t, "app's role", "s3cret")
	assert.Equal(t, 1, count(t, url, "SELECT 1"))
	_, err := pgx.Connect(ctx(t), strings.Replace(url, "s3cret", "wrong", 1))
	require.Error(t, err, "a role's password is checked")
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	c.Exec(t, "CREATE TABLE t (n int)")
	c.Exec(t, "INSERT INTO t VALUES (1)") // synchronous_commit on: durable once acknowledged

	begin := time.Now()
	require.NoError(t, c.Kill())
	t.Logf("killed in %v", time.Since(begin))
	_, err := pgx.Connect(ctx(t), c.URL())
	require.Error(t, err, "a killed server does not answer")
	require.NoError(t, c.Kill(), "killing a stopped server does nothing")

	begin = time.Now()
	c.Restart(t) // crash recovery
	t.Logf("restarted after the kill (crash recovery) in %v", time.Since(begin))
	assert.Equal(t, 1, count(t, c.URL(), "SELECT count(*) FROM t WHERE n = 1"))

	c.Exec(t, "INSERT INTO t VALUES (2)")
	begin = time.Now()
	c.Restart(t) // fast shutdown, start
	t.Logf("restarted (fast shutdown) in %v", time.Since(begin))
	assert.Equal(t, 2, count(t, c.URL(), "SELECT count(*) FROM t"))
	require.NoError(t, c.Stop())
	require.NoError(t, c.Stop(), "stopping a stopped server does nothing")
}

func TestStandbyFailover(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	primary, standby := pgtest.StartWithStandby(t)
	t.Logf("primary and synchronous standby started in %v", time.Since(begin))

	primary.Exec(t, "CREATE TABLE t (n int)")
	primary.Exec(t, "INSERT INTO t VALUES (1)")
	// Synchronous commit waits for the standby's flush, not its replay:
	// the row shows up there shortly.
	pollCtx := ctx(t)
	require.Eventually(t, func() bool {
		n, err := tryCount(pollCtx, standby.URL(), "SELECT count(*) FROM t WHERE n = 1")
		return err == nil && n == 1
	}, 10*time.Second, 20*time.Millisecond, "a row written on the primary shows up on the standby")
	_, err := pgx.Connect(ctx(t), standby.URL()+"&target_session_attrs=read-write")
	require.Error(t, err, "the standby refuses to be a read-write session")

	begin = time.Now()
	primary.Restart(t)
	primary.WaitSync(t)
	t.Logf("primary restarted and standby synchronous again in %v", time.Since(begin))
	primary.Exec(t, "INSERT INTO t VALUES (2)")

	begin = time.Now()
	require.NoError(t, primary.Kill())
	standby.Promote(t)
	t.Logf("primary killed and standby promoted in %v", time.Since(begin))

	url := pgtest.MultiHostURL(primary, standby)
	assert.Equal(t, "postgres://postgres@127.0.0.1:"+strconv.Itoa(primary.Port())+",127.0.0.1:"+strconv.Itoa(standby.Port())+
		"/postgres?sslmode=disable&target_session_attrs=read-write", url)
	p, err := pgxpool.New(ctx(t), url)
	require.NoError(t, err)
	defer p.Close()
	_, err = p.Exec(ctx(t), "INSERT INTO t VALUES (3)")
	require.NoError(t, err, "a write through the multi-host URL reaches the promoted standby")
	rows, err := p.Query(ctx(t), "SELECT n FROM t ORDER BY n")
	require.NoError(t, err)
	ns, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 3}, ns, "the rows acknowledged before the kill are on the promoted standby")
}
