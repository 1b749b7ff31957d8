package pgstore_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/pgtest"
	"github.com/sessionstore/sessionstore/pgstore"
)

// The database sees only ciphertext: after Sets, an Update and a Delete
// of sessions whose tokens carry a recognisable marker, on a server that
// logs every statement with its parameters, no column of any of the
// schema's tables, no line of the server log and no notification payload
// holds the marker, as text or as the hex of a bytea.
func TestDatabaseSeesOnlyCiphertext(t *testing.T) {
	ctx := ctxT(t)
	c := pgtest.Start(t, pgtest.Set("log_statement", "all"))
	pool := c.Pool(t)
	const marker = "MaRkEr-7c1f3a9e"
	needles := []string{marker, hex.EncodeToString([]byte(marker)), strings.ToLower(marker)}

	// A listener of our own on the records' channel.
	lconn, err := pgx.Connect(ctx, c.URL())
	require.NoError(t, err)
	_, err = lconn.Exec(ctx, `LISTEN "sessionstore:sessionstore"`)
	require.NoError(t, err)
	var mu sync.Mutex
	var payloads []string
	lctx, stopListening := context.WithCancel(ctx)
	listened := make(chan struct{})
	go func() {
		defer close(listened)
		for {
			n, err := lconn.WaitForNotification(lctx)
			if err != nil {
				return
			}
			mu.Lock()
			payloads = append(payloads, n.Payload)
			mu.Unlock()
		}
	}()

	key := newKeyFile(t)
	s, err := pgstore.Open(ctx, pool, "secrets", pgstore.WithKeyFile(key))
	require.NoError(t, err)
	defer s.Close()
	a := sessionstore.AuthObject{AccessToken: "access-" + marker, RefreshToken: "refresh-" + marker,
		TransferToken: "transfer-" + marker, Scope: "scope-" + marker, Expiry: time.Now().Add(time.Hour),
		Extra: map[string]any{"id_token": "id-" + marker}}
	require.NoError(t, s.Set(ctx, "server", a))
	require.NoError(t, s.Set(ctx, "other", a))
	_, err = s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		cur.AccessToken = "access2-" + marker
		return cur, nil
	})
	require.NoError(t, err)
	require.NoError(t, s.Delete(ctx, "other"))
	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	require.Equal(t, "access2-"+marker, got.AccessToken, "the session holds the marker")

	// The log holds the statements with their parameters: a parameter
	// of ours shows up in it.
	_, err = pool.Exec(ctx, `SELECT $1::text`, "log-control-4d2b")
	require.NoError(t, err)
	waitFor(t, "the server log to show parameters", func() bool { return strings.Contains(c.Log(), "log-control-4d2b") })
	waitFor(t, "the notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(payloads) >= 4 // 3 writes and a delete
	})
	stopListening()
	<-listened
	lconn.Close(context.Background())

	rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'sessionstore' ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"records", "locks", "hosts"}, tables)
	rowsSeen := 0
	for _, table := range tables {
		rows, err := pool.Query(ctx, `SELECT t::text FROM sessionstore.`+pgx.Identifier{table}.Sanitize()+` t`)
		require.NoError(t, err)
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		rowsSeen += len(texts)
		for _, text := range texts {
			for _, n := range needles {
				assert.NotContains(t, text, n, "a row of %s", table)
			}
		}
	}
	assert.GreaterOrEqual(t, rowsSeen, 2, "a record and a heartbeat at least")
	rows, err = pool.Query(ctx, `SELECT record FROM sessionstore.records`)
	require.NoError(t, err)
	records, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	require.Len(t, records, 1)
	for _, r := range records {
		assert.False(t, bytes.Contains(r, []byte(marker)), "the sealed bytes")
		assert.True(t, bytes.HasPrefix(r, []byte("age-encryption.org/")), "an age file")
	}

	log := c.Log()
	assert.Contains(t, log, "sessionstore.records", "the log holds the writes")
	for _, n := range needles {
		assert.NotContains(t, log, n, "the server log")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range payloads {
		for _, n := range needles {
			assert.NotContains(t, p, n, "a notification")
		}
	}
	t.Logf("%d rows, %d bytes of log, %d notifications: no marker", rowsSeen, len(log), len(payloads))
}
