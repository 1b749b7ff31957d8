package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionstore/sessionstore/internal/cliutil"
	"github.com/sessionstore/sessionstore/internal/protocol"
	"github.com/sessionstore/sessionstore/pgstore"
)

// pgFlags are the flags that reach a PostgreSQL namespace.
type pgFlags struct {
	url, namespace, schema string
}

// connect returns a pool of the server, after one query has reached it.
func (f pgFlags) connect(ctx context.Context) (*pgxpool.Pool, error) {
	ctx, cancel := context.WithTimeout(ctx, cliutil.PostgresTimeout)
	defer cancel()
	return cliutil.Postgres(ctx, f.url)
}

// fleet is the namespace on pool.
func (f pgFlags) fleet(pool *pgxpool.Pool) fleet {
	flags := fmt.Sprintf("-postgres %s -namespace %s", cliutil.PostgresFlag(f.url), strconv.Quote(f.namespace))
	if f.schema != pgstore.DefaultSchema {
		flags += " -schema " + strconv.Quote(f.schema)
	}
	schema := pgstore.WithSchema(f.schema)
	return fleet{
		flag:  "-postgres",
		flags: flags,
		promote: func(ctx context.Context, keyFile string, opts protocol.RotateOptions) (*protocol.RotateReport, error) {
			return pgstore.Promote(ctx, pool, f.namespace, keyFile, opts, schema)
		},
		retire: func(ctx context.Context, keyFile string, opts protocol.RotateOptions) (*protocol.RotateReport, error) {
			return pgstore.Retire(ctx, pool, f.namespace, keyFile, opts, schema)
		},
		check: func(ctx context.Context, keyFile string, opts protocol.CheckOptions) (*protocol.CheckReport, error) {
			return pgstore.Check(ctx, pool, f.namespace, keyFile, opts, schema)
		},
	}
}
