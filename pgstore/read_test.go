package pgstore_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/pgstore"
)

// The functions that work without a Store, on a schema no Open has made,
// say so, and still carry PostgreSQL's error.
func TestReadBeforeTablesExist(t *testing.T) {
	e := newEnv(t)
	pool, ctx := e.pool(t), ctxT(t)
	schema := pgstore.WithSchema("never_opened")

	_, errAll := pgstore.ReadRecords(ctx, pool, e.ns, nil, schema)
	_, errOne := pgstore.ReadRecord(ctx, pool, e.ns, nil, "podio", schema)
	_, errHosts := pgstore.Hosts(ctx, pool, e.ns, schema)
	errRemove := pgstore.Remove(ctx, pool, e.ns, "podio", schema)
	for _, err := range []error{errAll, errOne, errHosts, errRemove} {
		require.Error(t, err)
		var pe *pgconn.PgError
		assert.ErrorAs(t, err, &pe)
		assert.Contains(t, err.Error(), `the tables of schema "never_opened" do not exist yet: Open creates them`)
	}
}
