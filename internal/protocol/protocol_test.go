package protocol_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/protocol"
	"github.com/sessionstore/sessionstore/pgstore"
)

// Every backend's rotation errors are the same values: a program that
// handles one handles them all.
func TestOneErrorPerMeaning(t *testing.T) {
	assert.Equal(t, filestore.ErrRotationIncomplete, etcdstore.ErrRotationIncomplete)
	assert.Equal(t, etcdstore.ErrRotationIncomplete, pgstore.ErrRotationIncomplete)
	assert.Equal(t, etcdstore.ErrHostsNotReady, pgstore.ErrHostsNotReady)
}

// A name's lock excludes, honours the context of a waiter, and is free
// again once released.
func TestLocks(t *testing.T) {
	var l protocol.Locks
	unlock, err := l.Lock(context.Background(), "server")
	require.NoError(t, err)
	other, err := l.Lock(context.Background(), "client")
	require.NoError(t, err, "another name is not blocked")
	other()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = l.Lock(ctx, "server")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "held: the waiter gives up with its context")

	got := make(chan struct{})
	go func() {
		u, err := l.Lock(context.Background(), "server")
		if assert.NoError(t, err) {
			u()
		}
		close(got)
	}()
	unlock()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter never got the released lock")
	}
}
