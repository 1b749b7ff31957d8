package filestore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// A write that fails at any step returns the error, leaves the previous
// record intact and readable, and leaves no temp file behind.
func TestWriteFailureAtEveryStepLosesNothing(t *testing.T) {
	steps := []fsutil.Step{fsutil.StepCreate, fsutil.StepWrite, fsutil.StepSync, fsutil.StepClose, fsutil.StepRename, fsutil.StepSyncDir}
	for _, step := range steps {
		for _, errno := range []error{syscall.ENOSPC, syscall.EIO} {
			t.Run(step.String()+"/"+errno.Error(), func(t *testing.T) {
				ctx := ctxT(t)
				dir, key := t.TempDir(), newKeyFile(t, false)
				var fail bool
				s := openStore(t, dir, key, filestore.WithFault(func(s fsutil.Step) error {
					if fail && s == step {
						return errno
					}
					return nil
				}))
				require.NoError(t, s.Set(ctx, "server", sampleAuth()))
				fail = true
				next := sampleAuth()
				next.AccessToken = "next"
				err := s.Set(ctx, "server", next)
				require.Error(t, err)
				assert.ErrorIs(t, err, errno)
				assert.ErrorContains(t, err, filepath.Join(dir, "server.age"))

				fresh := openStore(t, dir, key)
				got, gerr := fresh.Get(ctx, "server")
				require.NoError(t, gerr)
				if step == fsutil.StepSyncDir {
					// The rename happened; only its durability is in
					// doubt. Either value is whole.
					assert.Contains(t, []string{"next", sampleAuth().AccessToken}, got.AccessToken)
				} else {
					assert.True(t, got.Equal(sampleAuth()), "the previous record is intact")
				}
				got, gerr = s.Get(ctx, "server")
				require.NoError(t, gerr)
				assert.NotEmpty(t, got.AccessToken, "the failing Store still reads a whole record")
				assertNoTempFiles(t, dir)
			})
		}
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, de := range des {
		assert.False(t, strings.Contains(de.Name(), ".tmp-"), "temp file left behind: %s", de.Name())
	}
}

func TestWriteIntoReadOnlyDirectoryFailsClearly(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into read-only directories; see the tmpfs test of the security issue")
	}
	ctx := ctxT(t)
	dir := t.TempDir()
	s := openStore(t, dir, newKeyFile(t, false))
	require.NoError(t, os.Chmod(dir, 0o500))
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	err := s.Set(ctx, "server", sampleAuth())
	require.Error(t, err)
	assert.True(t, errors.Is(err, os.ErrPermission), "%v", err)
}
