package etcdstore_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/sessionstore/sessionstore/etcdstore"
)

// ClientLogger sends etcd's messages to a slog.Logger: info at debug
// level, warnings and errors at theirs, with the fields of With and of the
// message; a nil logger discards them.
func TestClientLogger(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	z := etcdstore.ClientLogger(l).With(zap.String("member", "m1"))
	z.Info("hello", zap.Int("n", 2))
	z.Warn("slow")
	z.Error("failed", zap.Strings("keys", []string{"a"}))
	etcdstore.ClientLogger(nil).Error("nowhere")

	var got []map[string]any
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var m map[string]any
		require.NoError(t, dec.Decode(&m))
		delete(m, "time")
		got = append(got, m)
	}
	assert.Equal(t, []map[string]any{
		{"level": "DEBUG", "msg": "hello", "logger": "etcd", "member": "m1", "n": float64(2)},
		{"level": "WARN", "msg": "slow", "logger": "etcd", "member": "m1"},
		{"level": "ERROR", "msg": "failed", "logger": "etcd", "member": "m1", "keys": []any{"a"}},
	}, got)
}
