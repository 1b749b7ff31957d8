//go:build unix

package pgstore_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/pgstore"
)

// A process frozen (SIGSTOP) inside Update past its lock's lease loses the
// lock: another process takes it and writes. Resumed (SIGCONT), the frozen
// process's write is refused with sessionstore.ErrLockLost, and the other
// process's value stands.
func TestProcessFrozenPastLeaseLosesLock(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	s := e.open(t)
	require.NoError(t, s.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "before"}))
	k := startChild(t, ctx, childSpec{role: "hold", url: e.url, ns: e.ns, key: e.key, name: "server", ttl: time.Second})
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
	require.NoError(t, err, "the lock is taken over once the frozen process's lease expired")

	_, err = k.stdin.Write([]byte("go\n"))
	require.NoError(t, err)
	require.NoError(t, k.cmd.Process.Signal(syscall.SIGCONT))
	resumed = true
	k.expect(t, "lost")
	require.NoError(t, k.cmd.Wait())

	for _, st := range []*pgstore.Store{s, e.open(t), e.open(t, pgstore.WithoutListen())} {
		got, err := st.Get(ctx, "server")
		require.NoError(t, err)
		assert.Equal(t, "taken-over", got.AccessToken, "the other process's value stands")
	}
}
