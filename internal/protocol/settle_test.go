package protocol_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/keys"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// lostAnswers is a storage whose commits lose their answer: each is
// applied or not (apply), then reports protocol.ErrAmbiguous, as a
// connection lost around the statement would. after runs once the answer
// is lost (another host writing, say). No history: only the record tells.
type lostAnswers struct {
	mu    sync.Mutex
	data  []byte
	ver   int64
	apply bool
	after func(*lostAnswers)
}

func (b *lostAnswers) Where(name string) string { return "record " + name }
func (b *lostAnswers) Read(_ context.Context, name string) (protocol.Raw, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return protocol.Raw{Name: name, Data: bytes.Clone(b.data), Ver: b.ver}, nil
}
func (b *lostAnswers) ReadAll(context.Context) ([]protocol.Raw, error)     { return nil, nil }
func (b *lostAnswers) Names(context.Context) ([]string, error)             { return nil, nil }
func (b *lostAnswers) Lock(context.Context, string) (protocol.Lock, error) { return lostLock{b}, nil }
func (b *lostAnswers) Watch(ctx context.Context, _ *protocol.Feed) error {
	<-ctx.Done()
	return ctx.Err()
}
func (b *lostAnswers) Heartbeat(context.Context, protocol.Host) error { return nil }
func (b *lostAnswers) Close() error                                   { return nil }

type lostLock struct{ b *lostAnswers }

func (l lostLock) Commit(_ context.Context, ver int64, data []byte) (int64, error) {
	b := l.b
	b.mu.Lock()
	if b.apply && b.ver == ver {
		b.data, b.ver = bytes.Clone(data), b.ver+1
	}
	b.mu.Unlock()
	if b.after != nil {
		b.after(b)
	}
	return 0, protocol.Ambiguous(errors.New("connection lost"))
}
func (l lostLock) Unlock() {}

// After an ambiguous write, a backend without history reads the record
// back: its own bytes mean applied, the version it was fenced on means not
// applied, anything else is sessionstore.ErrOutcomeUnknown.
func TestAmbiguousWriteIsSettledByReadingBack(t *testing.T) {
	ctx := context.Background()
	ring, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	open := func(b *lostAnswers) *protocol.Store {
		k, err := keys.New(keys.Config{Pkg: "test", Ring: ring})
		require.NoError(t, err)
		s, err := protocol.New(ctx, protocol.Config{Pkg: "test", Namespace: "ns", Backend: b, Keys: k,
			Log: slog.New(slog.DiscardHandler), Now: time.Now, MaxStaleness: 1e9})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	a := sessionstore.AuthObject{AccessToken: "a"}

	applied := &lostAnswers{apply: true}
	require.NoError(t, open(applied).Set(ctx, "server", a), "its own bytes: applied")

	notApplied := &lostAnswers{}
	err = open(notApplied).Set(ctx, "server", a)
	require.Error(t, err)
	assert.NotErrorIs(t, err, sessionstore.ErrOutcomeUnknown, "still at the fenced version: not applied")
	assert.ErrorContains(t, err, "not applied")

	overwritten := &lostAnswers{apply: true, after: func(b *lostAnswers) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.data, b.ver = []byte("another host's record"), b.ver+1
	}}
	err = open(overwritten).Set(ctx, "server", a)
	assert.ErrorIs(t, err, sessionstore.ErrOutcomeUnknown, "changed since: unknown")
}
