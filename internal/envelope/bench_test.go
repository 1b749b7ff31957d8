package envelope_test

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

// benchRecord is a file record with a ~2 KiB access token, as the store
// hands it to Seal (compact JSON, as package wire writes it).
func benchRecord() *envelope.Record {
	tok := make([]byte, 1536)
	for i := range tok {
		tok[i] = byte(i * 131)
	}
	auth, err := json.Marshal(map[string]any{
		"access_token":  base64.RawURLEncoding.EncodeToString(tok), // 2048 bytes
		"refresh_token": "rt-0123456789abcdef0123456789abcdef",
		"token_type":    "Bearer",
		"expiry":        time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC),
		"scope":         "global:all",
		"ref":           map[string]any{"type": "user", "id": 1},
	})
	if err != nil {
		panic(err)
	}
	return &envelope.Record{AuthType: "server", Seq: 42, Written: time.Date(2026, 11, 27, 1, 2, 3, 4, time.UTC), Auth: auth}
}

func BenchmarkSeal(b *testing.B) {
	k, err := crypto.GenerateKeyring(false)
	if err != nil {
		b.Fatal(err)
	}
	rec := benchRecord()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.Seal(k, rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k, err := crypto.GenerateKeyring(false)
	if err != nil {
		b.Fatal(err)
	}
	ct, err := envelope.Seal(k, benchRecord())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := envelope.Open(k, ct, "", "server"); err != nil {
			b.Fatal(err)
		}
	}
}
