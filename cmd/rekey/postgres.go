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
	ctx, cancel := context.WithTimeout(ctx, cliutil.DialTimeout)
	defer cancel()
	return cliutil.Postgres(ctx, f.url)
}

// fleet is the namespace on pool.
func (f pgFlags) fleet(pool *pgxpool.Pool) fleet {
	flags := fmt.Sprintf("-postgres %s -namespace %s", cliutil.PostgresFlag(f.url), strconv.Quote(f.namespace))
	if f.schema != pgstore.DefaultSchema {
		flags += " -schema " + strconv.Quote(f.schema)
	}
	// The Store that a step reseals through needs no listening connection
	// (and so works through a transaction-pooling proxy).
	opts := []pgstore.Option{pgstore.WithSchema(f.schema), pgstore.WithoutListen()}
	return fleet{
		flag:  "-postgres",
		flags: flags,
		promote: func(ctx context.Context, keyFile string, ro protocol.RotateOptions) (*protocol.RotateReport, error) {
			return pgstore.Promote(ctx, pool, f.namespace, keyFile, ro, opts...)
		},
		retire: func(ctx context.Context, keyFile string, ro protocol.RotateOptions) (*protocol.RotateReport, error) {
			return pgstore.Retire(ctx, pool, f.namespace, keyFile, ro, opts...)
		},
		check: func(ctx context.Context, keyFile string, co protocol.CheckOptions) (*protocol.CheckReport, error) {
			return pgstore.Check(ctx, pool, f.namespace, keyFile, co, opts...)
		},
	}
}
