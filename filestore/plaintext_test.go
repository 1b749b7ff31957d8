package filestore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/filestore"
)

// A plaintext file in place of a record (a token someone saved by hand) is
// ErrTampered, with the file named and none of its bytes quoted: not by
// Get, Update, Check or a rotation.
func TestPlaintextRecordIsNotQuoted(t *testing.T) {
	const leak = "ghp_1234567890abcdefgh"
	ctx := ctxT(t)
	dir, key := t.TempDir(), newKeyFile(t, false)
	path := filepath.Join(dir, "leak.age")
	require.NoError(t, os.WriteFile(path, []byte(leak), 0o600))
	s := openStore(t, dir, key)

	var errs []error
	_, err := s.Get(ctx, "leak")
	errs = append(errs, err)
	_, err = s.Update(ctx, "leak", increment)
	errs = append(errs, err)
	statuses, err := filestore.Check(ctx, key, []string{dir}, filestore.CheckOptions{})
	require.NoError(t, err)
	require.Len(t, statuses, 1)
	errs = append(errs, statuses[0].Err)
	assert.NotContains(t, statuses[0].Error, "ghp_")
	rep, err := filestore.Rotate(ctx, key, []string{dir}, filestore.RotateOptions{})
	require.ErrorIs(t, err, filestore.ErrRotationIncomplete)
	assert.Contains(t, err.Error(), path)
	assert.NotContains(t, err.Error(), "ghp_")
	errs = append(errs, rep.Records[0].Err)
	for _, err := range errs {
		require.ErrorIs(t, err, sessionstore.ErrTampered)
		assert.Contains(t, err.Error(), path)
		assert.NotContains(t, err.Error(), "ghp_", "no byte of the file is quoted")
		assert.NotContains(t, err.Error(), "1234567890")
	}
	assert.Contains(t, errs[0].Error(), "not an age file")
}
