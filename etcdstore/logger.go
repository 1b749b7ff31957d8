package etcdstore

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ClientLogger returns a logger for an etcd client (clientv3.Config.Logger)
// or embedded server that writes through l (nil: nowhere) instead of JSON
// on stderr: etcd's debug and info messages at slog.LevelDebug, its
// warnings at slog.LevelWarn, its errors at slog.LevelError.
func ClientLogger(l *slog.Logger) *zap.Logger {
	if l == nil {
		return zap.NewNop()
	}
	return zap.New(&slogCore{l.With("logger", "etcd")})
}

type slogCore struct{ l *slog.Logger }

func level(z zapcore.Level) slog.Level {
	switch {
	case z < zapcore.WarnLevel:
		return slog.LevelDebug
	case z == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (c *slogCore) Enabled(z zapcore.Level) bool {
	return c.l.Enabled(context.Background(), level(z))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{c.l.With(attrs(fields)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	c.l.Log(context.Background(), level(e.Level), e.Message, attrs(fields)...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

// attrs converts zap fields to slog attributes through zap's map encoder.
func attrs(fields []zapcore.Field) []any {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]any, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		out = append(out, slog.Any(k, v))
	}
	return out
}
