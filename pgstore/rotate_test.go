package pgstore_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/pgstore"
)

// distribute copies the key file src over dst atomically (a temp file,
// mode 0600, renamed), as an operator's deployment would.
func distribute(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	tmp := dst + ".new"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, dst))
}

// copyKey copies the key file into a directory of its own: a host's copy.
func copyKey(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "sessionstore.key")
	distribute(t, src, dst)
	return dst
}

// waitHosts waits until n hosts are live and every one satisfies ok.
func waitHosts(t *testing.T, ctx context.Context, pool *pgxpool.Pool, ns string, n int, what string, ok func(pgstore.Host) bool) {
	t.Helper()
	waitFor(t, what, func() bool {
		hosts, err := pgstore.Hosts(ctx, pool, ns)
		require.NoError(t, err)
		return len(hosts) == n && !slices.ContainsFunc(hosts, func(h pgstore.Host) bool { return !ok(h) })
	})
}

func fingerprints(t *testing.T, keyFile string) []string {
	t.Helper()
	k, err := crypto.LoadKeyring(keyFile)
	require.NoError(t, err)
	return k.Fingerprints()
}

// notUnder counts the records not under identity i of the env's key file.
func notUnder(t *testing.T, ctx context.Context, pool *pgxpool.Pool, e env, i int) int {
	t.Helper()
	chk, err := pgstore.Check(ctx, pool, e.ns, e.key, pgstore.CheckOptions{})
	require.NoError(t, err)
	n := 0
	for _, r := range chk.Records {
		require.NoError(t, r.Err)
		if r.Key == i {
			n++
		}
	}
	return len(chk.Records) - n
}

// Promote refuses, changing nothing, while a live host (a separate
// process with its own key file) lacks the staged key, and names it;
// Retire refuses while a host's primary is still the old key. Once the
// key file is distributed, both go through, and every record ends up
// under the new key alone.
func TestRotateChecksHosts(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	pool := e.pool(t)
	s := e.open(t)
	for i := range 5 {
		require.NoError(t, s.Set(ctx, "rec-"+strconv.Itoa(i), sessionstore.AuthObject{AccessToken: "token-" + strconv.Itoa(i)}))
	}
	require.NoError(t, s.Close())
	stale := copyKey(t, e.key) // host B's copy, never updated at first

	_, err := pgstore.Promote(ctx, pool, e.ns, e.key, pgstore.RotateOptions{})
	require.ErrorContains(t, err, "has no staged key", "nothing to promote before Stage")

	st, err := pgstore.Stage(ctx, e.key, pgstore.StageOptions{})
	require.NoError(t, err)
	hostA := startChild(t, ctx, childSpec{role: "idle", url: e.url, ns: e.ns, key: copyKey(t, e.key)})
	hostA.expect(t, "ready")
	hostB := startChild(t, ctx, childSpec{role: "idle", url: e.url, ns: e.ns, key: stale})
	hostB.expect(t, "ready")
	waitHosts(t, ctx, pool, e.ns, 2, "both hosts", func(pgstore.Host) bool { return true })

	staged, err := os.ReadFile(e.key)
	require.NoError(t, err)
	rep, err := pgstore.Promote(ctx, pool, e.ns, e.key, pgstore.RotateOptions{})
	require.ErrorIs(t, err, pgstore.ErrHostsNotReady)
	require.Len(t, rep.Lacking, 1)
	assert.Equal(t, hostB.cmd.Process.Pid, rep.Lacking[0].PID, "the host that lacks the key is named")
	assert.Contains(t, err.Error(), "pid "+strconv.Itoa(hostB.cmd.Process.Pid))
	assert.Contains(t, err.Error(), st.Fingerprint)
	now, err := os.ReadFile(e.key)
	require.NoError(t, err)
	assert.Equal(t, staged, now, "the key file is byte for byte unchanged")
	assert.Zero(t, notUnder(t, ctx, pool, e, 0), "no record changed: all are still under the old primary")

	distribute(t, e.key, stale)
	waitHosts(t, ctx, pool, e.ns, 2, "every host holds the staged key", func(h pgstore.Host) bool { return h.Holds(st.Fingerprint) })
	rep, err = pgstore.Promote(ctx, pool, e.ns, e.key, pgstore.RotateOptions{Workers: 2})
	require.NoError(t, err)
	assert.Equal(t, st.Fingerprint, rep.Fingerprint)
	require.Len(t, rep.Records, 5)
	for _, r := range rep.Records {
		assert.True(t, r.Resealed, r.AuthType)
		assert.Zero(t, r.Key, r.AuthType)
	}
	assert.Equal(t, st.Fingerprint, fingerprints(t, e.key)[0], "the staged key is the primary")
	assert.Len(t, fingerprints(t, e.key), 2, "the old primary is kept, decrypt-only")

	promoted, err := os.ReadFile(e.key)
	require.NoError(t, err)
	rep, err = pgstore.Retire(ctx, pool, e.ns, e.key, pgstore.RotateOptions{})
	require.ErrorIs(t, err, pgstore.ErrHostsNotReady, "hosts still seal to the old primary")
	assert.Len(t, rep.Lacking, 2)
	now, err = os.ReadFile(e.key)
	require.NoError(t, err)
	assert.Equal(t, promoted, now, "the key file is byte for byte unchanged")

	distribute(t, e.key, stale)
	waitHosts(t, ctx, pool, e.ns, 2, "host B uses the new primary", func(h pgstore.Host) bool {
		return h.PID != hostB.cmd.Process.Pid || h.Primary() == st.Fingerprint
	})
	rep, err = pgstore.Retire(ctx, pool, e.ns, e.key, pgstore.RotateOptions{})
	require.ErrorIs(t, err, pgstore.ErrHostsNotReady, "host A still has the staged key file")
	require.Len(t, rep.Lacking, 1)
	assert.Equal(t, hostA.cmd.Process.Pid, rep.Lacking[0].PID)

	require.NoError(t, hostA.stdin.Close())
	hostA.expect(t, "done")
	require.NoError(t, hostA.cmd.Wait())
	rep, err = pgstore.Retire(ctx, pool, e.ns, e.key, pgstore.RotateOptions{})
	require.NoError(t, err, "the only live host uses the new primary")
	assert.Equal(t, 1, rep.Retired)
	assert.Equal(t, []string{st.Fingerprint}, fingerprints(t, e.key))

	chk, err := pgstore.Check(ctx, pool, e.ns, e.key, pgstore.CheckOptions{})
	require.NoError(t, err)
	require.Len(t, chk.Records, 5)
	for _, r := range chk.Records {
		require.NoError(t, r.Err)
		assert.Zero(t, r.Key)
	}
	got, err := e.open(t).Get(ctx, "rec-3")
	require.NoError(t, err)
	assert.Equal(t, "token-3", got.AccessToken)
}
