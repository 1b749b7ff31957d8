package filestore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
)

// ReadRecords and ReadRecord read without a Store: every record, those
// that do not open included, and a missing one is ErrNotFound.
func TestReadRecords(t *testing.T) {
	ctx := ctxT(t)
	dir, key, other := t.TempDir(), newKeyFile(t, false), newKeyFile(t, false)
	require.NoError(t, openStore(t, dir, key).Set(ctx, "server", sampleAuth()))
	require.NoError(t, openStore(t, dir, other).Set(ctx, "foreign", sampleAuth()))
	ring, err := crypto.LoadKeyring(key)
	require.NoError(t, err)

	recs, err := filestore.ReadRecords(ctx, dir, ring)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, "foreign", recs[0].AuthType)
	assert.ErrorIs(t, recs[0].Err, sessionstore.ErrWrongKey)
	assert.Equal(t, -1, recs[0].Key)
	assert.Equal(t, "server", recs[1].AuthType)
	require.NoError(t, recs[1].Err)
	assert.True(t, sampleAuth().Equal(recs[1].Auth), "the session it holds")
	assert.Equal(t, 0, recs[1].Key, "sealed to the primary")

	r, err := filestore.ReadRecord(ctx, dir, ring, "server")
	require.NoError(t, err)
	assert.True(t, sampleAuth().Equal(r.Auth))
	_, err = filestore.ReadRecord(ctx, dir, ring, "nosuch")
	assert.ErrorIs(t, err, sessionstore.ErrNotFound)
}
