package etcdstore_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/etcdtest"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// On a 3-member cluster (members are child processes), the leader is
// SIGKILLed while hosts (child processes, each with a client of every
// member) refresh a short-lived token at a provider that rotates refresh
// tokens, and increment a counter. No increment is lost, no refresh token
// is used twice, and every call returns: a value or an error.
func TestClusterLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-member cluster of processes")
	}
	ctx := ctxT(t)
	cl, err := etcdtest.StartCluster(etcdtest.ClusterConfig{Dir: t.TempDir(), Command: []string{os.Args[0], "-test.run=^$"}, Stderr: testWriter{t}})
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	c := etcdtest.NewClient(t, cl.Endpoints()...)
	prefix, key := etcdtest.Prefix(t), newKeyFile(t)
	s := openOn(t, c, prefix, etcdstore.WithKeyFile(key))

	srv := sessionstoretest.NewProvider(time.Second) // a refresh storm every half second
	defer srv.Close()
	srv.SetRefreshDelay(20 * time.Millisecond)
	tok, err := srv.Config().PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	require.NoError(t, err)
	a := sessionstore.FromToken(tok)
	a.Expiry = time.Now().Add(-time.Minute)
	require.NoError(t, s.Set(ctx, "server", a))

	const hosts = 4
	var kids []*child
	for range hosts {
		k := startChild(t, ctx, childSpec{role: "fleet", endpoints: cl.Endpoints(), prefix: prefix, key: key, name: "server", url: srv.URL})
		k.expect(t, "ready")
		kids = append(kids, k)
	}
	for _, k := range kids {
		_, err := k.stdin.Write([]byte("go\n"))
		require.NoError(t, err)
	}
	count := func() int {
		got, err := s.Get(ctx, "server-counter")
		if err != nil {
			return -1 // during the failover
		}
		n, _ := strconv.Atoi(got.AccessToken)
		return n
	}
	waitFor(t, "work under way", func() bool { return count() >= 10 && srv.Stats().Refreshes >= 2 })

	leader, err := cl.Leader(ctx, c)
	require.NoError(t, err)
	atKill, refreshesAtKill := count(), srv.Stats().Refreshes
	require.NoError(t, leader.Kill())
	next, err := cl.Leader(ctx, c)
	require.NoError(t, err)
	require.NotEqual(t, leader.Name, next.Name)
	t.Logf("killed leader %s at count %d; %s leads", leader.Name, atKill, next.Name)
	waitFor(t, "work after the failover", func() bool {
		return count() >= atKill+10 && srv.Stats().Refreshes >= refreshesAtKill+1
	})

	for _, k := range kids {
		require.NoError(t, k.stdin.Close())
	}
	var ok, failed, incs, unknown int
	for i, k := range kids {
		for {
			f := strings.Fields(nextLine(t, k))
			if f[0] == "error" {
				msg := strings.Join(f[1:], " ")
				t.Logf("host %d: error: %s", i+1, msg)
				assert.NotEmpty(t, msg, "a clear error")
				assert.NotContains(t, msg, "invalid_grant")
				continue
			}
			require.Equal(t, "done", f[0])
			n := make([]int, 4)
			for j := range n {
				n[j], err = strconv.Atoi(f[j+1])
				require.NoError(t, err)
			}
			ok, failed, incs, unknown = ok+n[0], failed+n[1], incs+n[2], unknown+n[3]
			break
		}
		require.NoError(t, k.cmd.Wait())
	}
	st := srv.Stats()
	// The hosts' last increments were acknowledged moments ago: s may
	// serve its cached value for up to WithMaxStaleness without them
	// (TestStalenessBoundAcrossLeaderKills checks that bound). What is
	// stored is what a Store opened now reads.
	fresh := openOn(t, c, prefix, etcdstore.WithKeyFile(key))
	got, err := fresh.Get(ctx, "server-counter")
	require.NoError(t, err)
	final, err := strconv.Atoi(got.AccessToken)
	require.NoError(t, err)
	t.Logf("provider: %d refreshes, %d invalid_grant, %d API calls, %d refused; hosts: %d calls ok, %d failed; %d increments confirmed, %d unknown, %d stored",
		st.Refreshes, st.InvalidGrants, st.APICalls, st.APIRefused, ok, failed, incs, unknown, final)
	assert.Zero(t, st.InvalidGrants, "no refresh token used twice")
	assert.GreaterOrEqual(t, final, incs, "no confirmed increment lost")
	assert.LessOrEqual(t, final, incs+unknown, "no increment applied that was reported refused")
	assert.Positive(t, ok)
}

// nextLine reads a child's next line.
func nextLine(t *testing.T, k *child) string {
	t.Helper()
	require.True(t, k.out.Scan(), "child ended early: %v", k.out.Err())
	require.NotEmpty(t, strings.TrimSpace(k.out.Text()))
	return k.out.Text()
}
