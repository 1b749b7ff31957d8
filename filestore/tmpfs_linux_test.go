package filestore_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory, or skips
// the test where the machine does not allow it (not root, no mount
// privilege). CI runs as root.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// On a real, full file system a write fails with ENOSPC, the previous
// record stays whole and readable, and no temp file is left.
func TestFullDiskLosesNothing(t *testing.T) {
	ctx := ctxT(t)
	mnt := mountTmpfs(t, "64k")
	dir, key := filepath.Join(mnt, "store"), newKeyFile(t, false)
	s := openStore(t, dir, key)
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))

	// Fill the disk.
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	require.NoError(t, err)
	chunk := make([]byte, 4096)
	for {
		if _, err := filler.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	filler.Close()

	big := sampleAuth()
	big.Extra = map[string]any{"padding": string(make([]byte, 8192))}
	err = s.Set(ctx, "server", big)
	require.Error(t, err)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	assert.Contains(t, err.Error(), filepath.Join(dir, "server.age"))
	assertNoTempFiles(t, dir)

	fresh := openStore(t, dir, key)
	got, err := fresh.Get(ctx, "server")
	require.NoError(t, err, "the previous record is intact")
	assert.True(t, got.Equal(sampleAuth()), "the session reads back")

	// Free space: writing works again.
	require.NoError(t, os.Remove(filepath.Join(mnt, "filler")))
	require.NoError(t, s.Set(ctx, "server", big))
}

// A store whose file system became read-only gives a clear error: a new
// record cannot even get its lock file, an existing one cannot be written.
func TestReadOnlyFileSystemFailsClearly(t *testing.T) {
	ctx := ctxT(t)
	mnt := mountTmpfs(t, "1m")
	dir, key := filepath.Join(mnt, "store"), newKeyFile(t, false)
	s := openStore(t, dir, key)
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("cannot remount read-only: %v", err)
	}

	err := s.Set(ctx, "new", sampleAuth())
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.EROFS), "%v", err)
	assert.Contains(t, err.Error(), "lock "+filepath.Join(dir, "new.lock"))

	err = s.Set(ctx, "server", sampleAuth())
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.EROFS), "%v", err)

	got, err := s.Get(ctx, "server")
	require.NoError(t, err, "reads go on")
	assert.True(t, got.Equal(sampleAuth()), "the session reads back")
}
