package etcdstore_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
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

// A write whose answer is lost and whose outcome reading back cannot
// establish either (more writes since the lock than the history walk
// reads, or the record deleted since) returns an error wrapping
// sessionstore.ErrOutcomeUnknown that names the key once; one that
// reading back finds not applied does not.
func TestUnknownOutcomeIsErrOutcomeUnknown(t *testing.T) {
	c := etcdtest.NewClient(t, etcdtest.Endpoint(t))
	pfx := etcdtest.Prefix(t)
	s := openOn(t, c, pfx, etcdstore.WithKeyFile(newKeyFile(t)))
	other := etcdtest.NewClient(t, etcdtest.Endpoint(t)) // writes without the lock
	key := pfx + "/records/server"
	require.NoError(t, s.Set(ctxT(t), "server", sampleAuth()))

	// update loses etcd's answer (the caller's context ends) after
	// meanwhile running under the record's lock.
	update := func(meanwhile func()) error {
		ctx, cancel := context.WithCancel(ctxT(t))
		defer cancel()
		_, err := s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
			meanwhile()
			cancel()
			cur.Scope = "changed"
			return cur, nil
		})
		return err
	}

	err := update(func() {
		for i := range 65 {
			_, err := other.Put(ctxT(t), key, "another writer "+strconv.Itoa(i))
			require.NoError(t, err)
		}
	})
	require.ErrorIs(t, err, sessionstore.ErrOutcomeUnknown)
	t.Log(err)
	assert.ErrorIs(t, err, context.Canceled, "the cause is kept")
	assert.NotErrorIs(t, err, sessionstore.ErrLockLost)
	assert.Equal(t, 1, strings.Count(err.Error(), key), "one message, naming the key once: %v", err)
	assert.Contains(t, err.Error(), "more than 64 writes")
	assert.Contains(t, err.Error(), "re-read")

	require.NoError(t, s.Set(ctxT(t), "server", sampleAuth()))
	err = update(func() {
		_, err := other.Delete(ctxT(t), key)
		require.NoError(t, err)
	})
	require.ErrorIs(t, err, sessionstore.ErrOutcomeUnknown)
	assert.Contains(t, err.Error(), "deleted since")

	// Nobody wrote meanwhile: the history shows the write was not applied.
	require.NoError(t, s.Set(ctxT(t), "server", sampleAuth()))
	err = update(func() {})
	require.Error(t, err)
	assert.NotErrorIs(t, err, sessionstore.ErrOutcomeUnknown)
	t.Log(err)
	assert.Contains(t, err.Error(), "not applied")
	got, err := s.Get(ctxT(t), "server")
	require.NoError(t, err)
	assert.Equal(t, "global:all", got.Scope)
}
