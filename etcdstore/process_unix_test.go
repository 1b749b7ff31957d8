//go:build unix

package etcdstore_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/etcdstore"
)

// A host frozen (SIGSTOP) inside Update past its lock's TTL loses the
// lock: another host takes it and writes. Resumed (SIGCONT), the frozen
// host's write is refused with sessionstore.ErrLockLost, and the other
// host's value stands.
func TestHostFrozenPastTTLLosesLock(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	s := e.open(t)
	require.NoError(t, s.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "before"}))
	k := startChild(t, ctx, childSpec{role: "hold", endpoints: []string{e.endpoint}, prefix: e.prefix, key: e.key, name: "server", ttl: time.Second})
	k.expect(t, "holding")
	require.NoError(t, k.cmd.Process.Signal(syscall.SIGSTOP))
	resumed := false
	defer func() {
		if !resumed {
			k.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()

	_, err := s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		assert.Equal(t, "before", cur.AccessToken)
		cur.AccessToken = "taken-over"
		return cur, nil
	})
	require.NoError(t, err, "the lock is taken over once the frozen host's lease expired")

	_, err = k.stdin.Write([]byte("go\n"))
	require.NoError(t, err)
	require.NoError(t, k.cmd.Process.Signal(syscall.SIGCONT))
	resumed = true
	k.expect(t, "lost")
	require.NoError(t, k.cmd.Wait())

	for _, st := range []*etcdstore.Store{s, e.open(t)} {
		got, err := st.Get(ctx, "server")
		require.NoError(t, err)
		assert.Equal(t, "taken-over", got.AccessToken, "the other host's value stands")
	}
}
