package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/protocol"
	"github.com/sessionstore/sessionstore/pgstore"
)

func sampleAuth() sessionstore.AuthObject {
	return sessionstore.AuthObject{AccessToken: "access", RefreshToken: "refresh", TokenType: "Bearer", Scope: "read"}
}

// A record binds its namespace and its name: a row copied through SQL to
// another name, or to the same name in another namespace, does not open.
func TestCopiedRowIsTampered(t *testing.T) {
	ctx := ctxT(t)
	e := newEnv(t)
	pool := e.pool(t)
	s := e.open(t)
	require.NoError(t, s.Set(ctx, "server", sampleAuth()))

	_, err := pool.Exec(ctx, `INSERT INTO sessionstore.records (namespace, name, record, version)
		SELECT namespace, 'client', record, nextval('sessionstore.versions') FROM sessionstore.records
		WHERE namespace = $1 AND name = 'server'`, e.ns)
	require.NoError(t, err)
	other := e.ns + "-other"
	_, err = pool.Exec(ctx, `INSERT INTO sessionstore.records (namespace, name, record, version)
		SELECT $2, name, record, nextval('sessionstore.versions') FROM sessionstore.records
		WHERE namespace = $1 AND name = 'server'`, e.ns, other)
	require.NoError(t, err)

	for _, st := range []*pgstore.Store{s, e.open(t, pgstore.WithoutListen())} {
		_, err = st.Get(ctx, "client")
		assert.ErrorIs(t, err, sessionstore.ErrTampered, "copied to another name")
		assert.Contains(t, err.Error(), `name "client"`, "the error names the row")
		_, err = st.Update(ctx, "client", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
			t.Error("fn runs over a copied row")
			return cur, nil
		})
		assert.ErrorIs(t, err, sessionstore.ErrTampered)
	}
	p, err := pgstore.Open(ctx, pool, other, pgstore.WithKeyFile(e.key))
	require.NoError(t, err)
	defer p.Close()
	_, err = p.Get(ctx, "server")
	assert.ErrorIs(t, err, sessionstore.ErrTampered, "copied to another namespace")

	got, err := s.Get(ctx, "server")
	require.NoError(t, err)
	assert.True(t, sampleAuth().Equal(got), "the original is untouched: got %v", got)
}

// An older row restored through SQL over a newer one is
// sessionstore.ErrRollback for a Store that saw the newer one, whether the
// restored row comes with a new version (an UPDATE of the bytes) or with
// its old one (a backup's row put back as it was); a Store that never saw
// the newer one cannot tell.
func TestRestoredRowIsRollback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version string // SQL for the restored row's version; $3 is its old version
	}{
		{"new version", "nextval('sessionstore.versions')"},
		{"old version", "$3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			e := newEnv(t)
			pool := e.pool(t)
			writer, watcher, poller := e.open(t), e.open(t), e.open(t, pgstore.WithoutListen())
			require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v1"}))
			old, oldVer := rawRecord(t, pool, e.ns, "server")
			require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v2"}))
			for _, s := range []*pgstore.Store{watcher, poller} {
				waitFor(t, "v2", func() bool {
					got, err := s.Get(ctx, "server")
					return err == nil && got.AccessToken == "v2"
				})
			}

			_, err := pool.Exec(ctx, `UPDATE sessionstore.records SET record = $2, version = `+tc.version+`
				WHERE namespace = $1 AND name = 'server' AND $3::bigint > 0`, e.ns, old, oldVer)
			require.NoError(t, err)
			for name, s := range map[string]*pgstore.Store{"writer": writer, "watcher": watcher, "poller": poller} {
				// The SQL sent no notification: a listening Store may
				// serve the newer value it holds until it reads the row
				// again, as it does after its feed restarts.
				protocol.RestartFeed(s.Store)
				var err error
				waitFor(t, name+" reads the row again", func() bool {
					_, err = s.Get(ctx, "server")
					return err != nil
				})
				assert.ErrorIs(t, err, sessionstore.ErrRollback, name)
				_, err = s.Update(ctx, "server", func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
					t.Errorf("%s: Update runs fn over a rolled-back row (%q)", name, cur.AccessToken)
					return cur, nil
				})
				assert.ErrorIs(t, err, sessionstore.ErrRollback, name+": Update")
			}
			fresh, err := e.open(t).Get(ctx, "server")
			require.NoError(t, err, "a Store that never saw v2")
			assert.Equal(t, "v1", fresh.AccessToken)

			require.NoError(t, writer.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "v3"}), "Set replaces a rolled-back row")
			for _, s := range []*pgstore.Store{watcher, poller} {
				waitFor(t, "v3", func() bool {
					got, err := s.Get(ctx, "server")
					return err == nil && got.AccessToken == "v3"
				})
			}
		})
	}
}
