package sessionstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/memstore"
)

// BenchmarkTokenSourceValid is Token with a valid stored token, against
// its floor, oauth2.ReuseTokenSource with a valid token.
func BenchmarkTokenSourceValid(b *testing.B) {
	valid := sessionstore.AuthObject{AccessToken: strings.Repeat("a", 1500), RefreshToken: strings.Repeat("r", 500),
		TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	b.Run("ours", func(b *testing.B) {
		s := memstore.New()
		ctx := context.Background()
		if err := s.Set(ctx, "server", valid); err != nil {
			b.Fatal(err)
		}
		ts := sessionstore.TokenSource(ctx, s, "server", nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ts.Token(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		ts := oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(valid.Token()))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ts.Token(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
