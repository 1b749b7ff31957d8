//go:build !windows

package filestore_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// holdFlock takes path's flock on a file description of its own, as
// another process would, and returns its release.
func holdFlock(t *testing.T, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	require.NoError(t, err)
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX))
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }
}

// A writer waiting for a lock held elsewhere is woken by its release (it
// waits in the kernel); one whose ctx ends returns at once, and the flock
// it was still waiting for is let go as soon as it is granted, so later
// writers are not blocked by it.
func TestLockWaitersAndAbandonedWaits(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	s := openStore(t, dir, newKeyFile(t, false))
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))
	release := holdFlock(t, filepath.Join(dir, "server.lock"))

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := s.Set(short, "server", sampleAuth())
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	done := make(chan error, 1)
	go func() { done <- s.Set(ctx, "server", sampleAuth()) }()
	select {
	case err := <-done:
		t.Fatalf("Set returned while the lock was held elsewhere: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case err := <-done:
		require.NoError(t, err, "the waiter got the lock once it was released")
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter never got the released lock")
	}
	// The abandoned wait let its flock go: the lock is free for others.
	require.Eventually(t, func() bool {
		f, err := os.Open(filepath.Join(dir, "server.lock"))
		if err != nil {
			return false
		}
		defer f.Close()
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			return false
		}
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return true
	}, 5*time.Second, time.Millisecond)
}
