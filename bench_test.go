package sessionstore_test

import (
	"context"
	"encoding/base64"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/memstore"
)

// TokenSource(...).Token() with a valid token, beside its floor
// (docs/PERFORMANCE.md, "The targets": ≤ 2× the floor, 0 allocs), on a
// realistic 2 KiB token:
//
//	go test -run '^$' -bench TokenSource -count 5 .
//
// filestore's -perf report measures the same pair, interleaved.

var benchTok *oauth2.Token

// benchAuth is a session with a JWT-like 1,480-byte access token and a
// 512-byte refresh token (~2 KiB of JSON), valid for an hour.
func benchAuth() sessionstore.AuthObject {
	b64 := func(seed uint64, n int) string {
		rng := rand.New(rand.NewPCG(seed, 0x5e551))
		raw := make([]byte, n)
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		return base64.RawURLEncoding.EncodeToString(raw)[:n]
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"k-2026"}`))
	a := sampleAuth()
	a.AccessToken = header + "." + b64(0, 1080) + "." + b64(2, 342)
	a.RefreshToken = "rt-SECRET-" + b64(1, 502)
	a.Expiry = time.Now().Add(time.Hour)
	return a
}

func BenchmarkTokenSource(b *testing.B) {
	ctx := context.Background()
	b.Run("filestore", func(b *testing.B) {
		ring, err := crypto.GenerateKeyring(false)
		require.NoError(b, err)
		key := filepath.Join(b.TempDir(), "sessionstore.key")
		require.NoError(b, crypto.CreateKeyFile(key, ring))
		s, err := filestore.Open(b.TempDir(), filestore.WithKeyFile(key))
		require.NoError(b, err)
		b.Cleanup(func() { s.Close() })
		require.NoError(b, s.Set(ctx, "server", benchAuth()))
		// Until the watcher vouches for the cached record, Gets validate
		// it against the file (and allocate): wait for a trusted hit.
		get := func() {
			_, err := s.Get(ctx, "server")
			require.NoError(b, err)
		}
		for i := 0; testing.AllocsPerRun(1, get) > 0; i++ {
			require.Less(b, i, 10_000, "the watcher does not start")
			time.Sleep(time.Millisecond)
		}
		benchTokenSource(b, sessionstore.TokenSource(ctx, s, "server", nil))
	})
	b.Run("memstore", func(b *testing.B) {
		s := memstore.New()
		require.NoError(b, s.Set(ctx, "server", benchAuth()))
		benchTokenSource(b, sessionstore.TokenSource(ctx, s, "server", nil))
	})
}

// BenchmarkTokenSourceFloor: oauth2.ReuseTokenSource holding a valid
// token.
func BenchmarkTokenSourceFloor(b *testing.B) {
	benchTokenSource(b, oauth2.ReuseTokenSource(benchAuth().Token(), nil))
}

func benchTokenSource(b *testing.B, ts oauth2.TokenSource) {
	_, err := ts.Token()
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		tok, err := ts.Token()
		if err != nil {
			b.Fatal(err)
		}
		benchTok = tok
	}
}
