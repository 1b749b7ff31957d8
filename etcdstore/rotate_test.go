package etcdstore_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
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
func waitHosts(t *testing.T, ctx context.Context, c *clientv3.Client, prefix string, n int, what string, ok func(etcdstore.Host) bool) {
	t.Helper()
	waitFor(t, what, func() bool {
		hosts, err := etcdstore.Hosts(ctx, c, prefix)
		require.NoError(t, err)
		return len(hosts) == n && !slices.ContainsFunc(hosts, func(h etcdstore.Host) bool { return !ok(h) })
	})
}

func fingerprints(t *testing.T, keyFile string) []string {
	t.Helper()
	k, err := crypto.LoadKeyring(keyFile)
	require.NoError(t, err)
	return k.Fingerprints()
}

func seed(t *testing.T, e env, n int) {
	t.Helper()
	s := e.open(t)
	for i := range n {
		require.NoError(t, s.Set(ctxT(t), "rec-"+strconv.Itoa(i), sessionstore.AuthObject{AccessToken: "token-" + strconv.Itoa(i)}))
	}
	require.NoError(t, s.Close())
}

// Stage adds one identity after the primary; running it again changes
// nothing and reports the same staged key.
func TestStageOnce(t *testing.T) {
	ctx := ctxT(t)
	key := newKeyFile(t)
	before := fingerprints(t, key)
	rep, err := etcdstore.Stage(ctx, key, etcdstore.StageOptions{})
	require.NoError(t, err)
	assert.False(t, rep.Already)
	after := fingerprints(t, key)
	require.Equal(t, []string{before[0], rep.Fingerprint}, after, "the primary stays first; the new key is after it")
	fi, err := os.Stat(key)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	staged, err := os.ReadFile(key)
	require.NoError(t, err)
	again, err := etcdstore.Stage(ctx, key, etcdstore.StageOptions{})
	require.NoError(t, err)
	assert.True(t, again.Already)
	assert.Equal(t, rep.Fingerprint, again.Fingerprint)
	now, err := os.ReadFile(key)
	require.NoError(t, err)
	assert.Equal(t, staged, now, "a rerun does not pile up identities")

	_, err = etcdstore.Stage(ctx, key, etcdstore.StageOptions{Kind: crypto.PostQuantum})
	require.ErrorContains(t, err, "already has a staged X25519 key")
	now, err = os.ReadFile(key)
	require.NoError(t, err)
	assert.Equal(t, staged, now, "asking for the other kind changes nothing")
}

// Stage gives the staged key the primary's kind unless told otherwise: a
// routine rotation of a post-quantum key file stays post-quantum. A key
// staged with another kind is kept by a rerun that asks for no kind, and
// its promotion reports the change of kind.
func TestStageKeepsTheKind(t *testing.T) {
	ctx := ctxT(t)
	pqKey := filepath.Join(t.TempDir(), "pq.key")
	pq, err := crypto.GenerateKeyring(true)
	require.NoError(t, err)
	require.NoError(t, crypto.CreateKeyFile(pqKey, pq))
	rep, err := etcdstore.Stage(ctx, pqKey, etcdstore.StageOptions{})
	require.NoError(t, err)
	assert.Equal(t, crypto.PostQuantum, rep.Kind, "the primary's kind")
	assert.Equal(t, crypto.PostQuantum, rep.PrimaryKind)
	ring, err := crypto.LoadKeyring(pqKey)
	require.NoError(t, err)
	assert.Equal(t, crypto.PostQuantum, ring.KindOf(1))

	// An X25519 key file, staged post-quantum on purpose, then rerun
	// without a kind (a routine job): the staged key stays.
	e := newEnv(t)
	rep, err = etcdstore.Stage(ctx, e.key, etcdstore.StageOptions{Kind: crypto.PostQuantum})
	require.NoError(t, err)
	assert.Equal(t, crypto.PostQuantum, rep.Kind)
	assert.Equal(t, crypto.X25519, rep.PrimaryKind)
	again, err := etcdstore.Stage(ctx, e.key, etcdstore.StageOptions{})
	require.NoError(t, err)
	assert.True(t, again.Already)
	assert.Equal(t, rep.Fingerprint, again.Fingerprint)
	assert.Equal(t, crypto.PostQuantum, again.Kind)
	_, err = etcdstore.Stage(ctx, e.key, etcdstore.StageOptions{Kind: crypto.X25519})
	require.ErrorContains(t, err, "already has a staged post-quantum key")

	c := e.client(t)
	promoted, err := etcdstore.Promote(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{})
	require.NoError(t, err)
	assert.Equal(t, crypto.PostQuantum, promoted.Kind)
	assert.Equal(t, crypto.X25519, promoted.OldKind)
	ring, err = crypto.LoadKeyring(e.key)
	require.NoError(t, err)
	assert.True(t, ring.PostQuantum())
}

// Promote refuses, changing nothing, while a live host (a separate
// process with its own key file) lacks the staged key, and names it;
// Retire refuses while a host's primary is still the old key. Once the
// key file is distributed, both go through, and every record ends up
// under the new key alone.
func TestRotateChecksHosts(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	seed(t, e, 5)
	stale := copyKey(t, e.key) // host B's copy, never updated at first

	_, err := etcdstore.Promote(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{})
	require.ErrorContains(t, err, "has no staged key", "nothing to promote before -stage")

	st, err := etcdstore.Stage(ctx, e.key, etcdstore.StageOptions{})
	require.NoError(t, err)
	hostA := startChild(t, ctx, childSpec{role: "idle", endpoints: []string{e.endpoint}, prefix: e.prefix, key: copyKey(t, e.key)})
	hostA.expect(t, "ready")
	hostB := startChild(t, ctx, childSpec{role: "idle", endpoints: []string{e.endpoint}, prefix: e.prefix, key: stale})
	hostB.expect(t, "ready")
	waitHosts(t, ctx, c, e.prefix, 2, "both hosts", func(etcdstore.Host) bool { return true })

	staged, err := os.ReadFile(e.key)
	require.NoError(t, err)
	rep, err := etcdstore.Promote(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{})
	require.ErrorIs(t, err, etcdstore.ErrHostsNotReady)
	require.Len(t, rep.Lacking, 1)
	assert.Equal(t, hostB.cmd.Process.Pid, rep.Lacking[0].PID, "the host that lacks the key is named")
	assert.Contains(t, err.Error(), "pid "+strconv.Itoa(hostB.cmd.Process.Pid))
	assert.Contains(t, err.Error(), st.Fingerprint)
	now, err := os.ReadFile(e.key)
	require.NoError(t, err)
	assert.Equal(t, staged, now, "the key file is byte for byte unchanged")
	assert.Zero(t, notUnder(t, ctx, c, e, 0), "no record changed: all are still under the old primary")

	distribute(t, e.key, stale)
	waitHosts(t, ctx, c, e.prefix, 2, "every host holds the staged key", func(h etcdstore.Host) bool { return h.Holds(st.Fingerprint) })
	rep, err = etcdstore.Promote(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{Workers: 2})
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
	rep, err = etcdstore.Retire(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{})
	require.ErrorIs(t, err, etcdstore.ErrHostsNotReady, "hosts still seal to the old primary")
	assert.Len(t, rep.Lacking, 2)
	now, err = os.ReadFile(e.key)
	require.NoError(t, err)
	assert.Equal(t, promoted, now, "the key file is byte for byte unchanged")

	distribute(t, e.key, stale)
	waitHosts(t, ctx, c, e.prefix, 2, "host B uses the new primary", func(h etcdstore.Host) bool {
		return h.PID != hostB.cmd.Process.Pid || h.Primary() == st.Fingerprint
	})
	rep, err = etcdstore.Retire(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{})
	require.ErrorIs(t, err, etcdstore.ErrHostsNotReady, "host A still has the staged key file")
	require.Len(t, rep.Lacking, 1)
	assert.Equal(t, hostA.cmd.Process.Pid, rep.Lacking[0].PID)

	require.NoError(t, hostA.stdin.Close())
	hostA.expect(t, "done")
	require.NoError(t, hostA.cmd.Wait())
	rep, err = etcdstore.Retire(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{})
	require.NoError(t, err, "the only live host uses the new primary")
	assert.Equal(t, 1, rep.Retired)
	assert.Equal(t, []string{st.Fingerprint}, fingerprints(t, e.key))

	chk, err := etcdstore.Check(ctx, c, e.prefix, e.key, etcdstore.CheckOptions{})
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

// notUnder counts the records not under identity i of the env's key file.
func notUnder(t *testing.T, ctx context.Context, c *clientv3.Client, e env, i int) int {
	t.Helper()
	chk, err := etcdstore.Check(ctx, c, e.prefix, e.key, etcdstore.CheckOptions{})
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

// A record that does not open with the keys on hand makes Promote refuse
// before it changes anything, naming the record; Check reports it.
func TestRotateRefusesRecordThatDoesNotOpen(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	seed(t, e, 2)
	foreign := openOn(t, e.client(t), e.prefix, etcdstore.WithKeyFile(newKeyFile(t)))
	require.NoError(t, foreign.Set(ctx, "foreign", sampleAuth()))
	require.NoError(t, foreign.Close())
	_, err := etcdstore.Stage(ctx, e.key, etcdstore.StageOptions{})
	require.NoError(t, err)
	staged, err := os.ReadFile(e.key)
	require.NoError(t, err)

	rep, err := etcdstore.Promote(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{})
	require.ErrorIs(t, err, etcdstore.ErrRotationIncomplete)
	assert.Contains(t, err.Error(), e.prefix+"/records/foreign")
	assert.Contains(t, err.Error(), "nothing changed")
	require.Len(t, rep.Records, 3)
	now, err := os.ReadFile(e.key)
	require.NoError(t, err)
	assert.Equal(t, staged, now, "the key file is byte for byte unchanged")

	chk, err := etcdstore.Check(ctx, c, e.prefix, e.key, etcdstore.CheckOptions{})
	require.NoError(t, err)
	assert.Equal(t, chk.Staged, fingerprints(t, e.key)[1])
	for _, r := range chk.Records {
		if r.AuthType == "foreign" {
			assert.ErrorIs(t, r.Err, sessionstore.ErrWrongKey)
			assert.Equal(t, -1, r.Key)
		} else {
			assert.NoError(t, r.Err)
			assert.Zero(t, r.Key)
		}
		assert.NotContains(t, r.Error, "SECRET")
	}
}

// A dry run checks the hosts and the records and changes nothing; a
// promotion interrupted after its key file was written resumes with the
// same new primary.
func TestRotateDryRunAndResume(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	seed(t, e, 3)
	st, err := etcdstore.Stage(ctx, e.key, etcdstore.StageOptions{})
	require.NoError(t, err)
	staged, err := os.ReadFile(e.key)
	require.NoError(t, err)
	rep, err := etcdstore.Promote(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{DryRun: true})
	require.NoError(t, err)
	assert.Len(t, rep.Records, 3)
	now, err := os.ReadFile(e.key)
	require.NoError(t, err)
	assert.Equal(t, staged, now)

	// What step 2 writes before resealing: the staged key first, marked
	// as a rotation in progress.
	k, err := crypto.LoadKeyring(e.key)
	require.NoError(t, err)
	next, err := k.Promote()
	require.NoError(t, err)
	require.NoError(t, crypto.ReplaceKeyFile(e.key, next.WithRotating(true)))
	_, err = etcdstore.Stage(ctx, e.key, etcdstore.StageOptions{})
	require.ErrorContains(t, err, "a rotation is in progress")

	rep, err = etcdstore.Promote(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{})
	require.NoError(t, err)
	assert.True(t, rep.Resumed)
	assert.Equal(t, st.Fingerprint, rep.Fingerprint)
	assert.Len(t, fingerprints(t, e.key), 2)
	for _, r := range rep.Records {
		assert.Zero(t, r.Key)
	}
}

// A staged rotation (stage, promote, retire) while hosts (separate
// processes with key files of their own, which the test distributes
// between the steps) keep incrementing a counter: no host sees an error,
// no increment is lost, and every record ends up under the new key alone.
func TestRotationWhileHostsWork(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	c := e.client(t)
	seed(t, e, 3)
	const procs = 3
	var kids []*child
	var keys []string
	for range procs {
		key := copyKey(t, e.key)
		k := startChild(t, ctx, childSpec{role: "work", endpoints: []string{e.endpoint}, prefix: e.prefix, key: key, name: "counter"})
		k.expect(t, "ready")
		kids, keys = append(kids, k), append(keys, key)
	}
	distributeAll := func() {
		for _, k := range keys {
			distribute(t, e.key, k)
		}
	}
	s := e.open(t)
	waitFor(t, "some increments", func() bool {
		a, err := s.Get(ctx, "counter")
		n, _ := strconv.Atoi(a.AccessToken)
		return err == nil && n >= 10
	})
	require.NoError(t, s.Close())

	st, err := etcdstore.Stage(ctx, e.key, etcdstore.StageOptions{})
	require.NoError(t, err)
	distributeAll()
	waitHosts(t, ctx, c, e.prefix, procs, "every host holds the staged key", func(h etcdstore.Host) bool { return h.Holds(st.Fingerprint) })

	rep, err := etcdstore.Promote(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{})
	require.NoError(t, err)
	t.Logf("promoted: %d records, %d stragglers sealed by hosts with the staged key file", len(rep.Records), rep.Stragglers)
	distributeAll()
	waitHosts(t, ctx, c, e.prefix, procs, "every host uses the new primary", func(h etcdstore.Host) bool { return h.Primary() == st.Fingerprint })

	rep, err = etcdstore.Retire(ctx, c, e.prefix, e.key, etcdstore.RotateOptions{})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Retired)
	distributeAll()
	waitHosts(t, ctx, c, e.prefix, procs, "every host has the new key alone", func(h etcdstore.Host) bool {
		return slices.Equal(h.Keys, []string{st.Fingerprint})
	})

	total := 0
	for _, k := range kids {
		require.NoError(t, k.stdin.Close())
		f := k.expect(t, "done")
		n, err := strconv.Atoi(f[1])
		require.NoError(t, err)
		total += n
		require.NoError(t, k.cmd.Wait(), "no host saw an error")
	}
	got, err := e.open(t).Get(ctx, "counter")
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(total), got.AccessToken, "%d increments by %d hosts: none lost", total, procs)
	t.Logf("%d increments during the rotation", total)

	chk, err := etcdstore.Check(ctx, c, e.prefix, e.key, etcdstore.CheckOptions{})
	require.NoError(t, err)
	require.Len(t, chk.Records, 4)
	for _, r := range chk.Records {
		require.NoError(t, r.Err)
		assert.Zero(t, r.Key, "%s is under the new key", r.AuthType)
	}
}
