package etcdstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/etcdtest"
)

// A write whose answer was lost releases its lock in the same transaction,
// so another host may write before the writer asks again: the record's
// history, walked back to the lock's revision, still tells that the write
// was applied, and that one never applied was not.
func TestAppliedSinceReadsTheHistory(t *testing.T) {
	ctx := ctxT(t)
	c := etcdtest.NewClient(t, etcdtest.Endpoint(t))
	pfx := etcdtest.Prefix(t)
	s := openOn(t, c, pfx, etcdstore.WithKeyFile(newKeyFile(t)))
	key := pfx + "/records/server"

	before, err := c.Put(ctx, key, "older")
	require.NoError(t, err)
	lockRev := before.Header.Revision // the writer's lock is taken after this
	ours, err := c.Put(ctx, key, "ours-ciphertext")
	require.NoError(t, err)
	for _, v := range []string{"another host", "and another"} { // written after ours
		_, err := c.Put(ctx, key, v)
		require.NoError(t, err)
	}

	rev, applied, err := s.AppliedSince(ctx, key, []byte("ours-ciphertext"), lockRev)
	require.NoError(t, err)
	assert.True(t, applied, "found two writes back")
	assert.Equal(t, ours.Header.Revision, rev)

	_, applied, err = s.AppliedSince(ctx, key, []byte("never written"), lockRev)
	require.NoError(t, err)
	assert.False(t, applied, "walked back to the lock: not applied")

	_, applied, err = s.AppliedSince(ctx, key, []byte("older"), lockRev)
	require.NoError(t, err)
	assert.False(t, applied, "a value from before the lock is not this write")

	_, err = c.Delete(ctx, key)
	require.NoError(t, err)
	_, _, err = s.AppliedSince(ctx, key, []byte("ours-ciphertext"), lockRev)
	assert.Error(t, err, "deleted since: the history cannot tell, and says so")
}
