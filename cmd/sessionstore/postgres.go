package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/cliutil"
	"github.com/sessionstore/sessionstore/internal/protocol"
	"github.com/sessionstore/sessionstore/pgstore"
)

// pgFlags name a PostgreSQL namespace.
type pgFlags struct {
	url, namespace, schema string
}

// pgFleet is a namespace in a PostgreSQL database.
type pgFleet struct {
	pool *pgxpool.Pool
	name string // the server, quoted, as cliutil.PostgresName says
	ns   string
	opts []pgstore.Option // the schema
}

// openPostgres connects to f.url for cmd and checks that the server
// answers, within ctx. ls and show load the key file, import opens the
// store of the namespace, rm needs no key.
func openPostgres(ctx context.Context, f pgFlags, cmd, keyFile string, passphrase func() (string, error), identity string) (*fleetBackend, error) {
	return openFleet(ctx, cmd, keyFile, passphrase, identity, func(ctx context.Context) (fleet, error) {
		pool, err := cliutil.Postgres(ctx, f.url)
		if err != nil {
			return nil, err
		}
		return &pgFleet{pool: pool, name: cliutil.PostgresName(pool.Config()), ns: f.namespace,
			opts: []pgstore.Option{pgstore.WithSchema(f.schema)}}, nil
	})
}

func (p *pgFleet) unanswered(err error) error {
	return fmt.Errorf("postgres %s did not answer in time (is it running, and is -postgres right?): %w", p.name, err)
}

func (p *pgFleet) where() string {
	return fmt.Sprintf("in namespace %s of %s", strconv.Quote(p.ns), p.name)
}

func (p *pgFleet) Close() { p.pool.Close() }

// Open opens the namespace's Store without a listening connection: the
// command writes and exits, and works through a transaction-pooling
// proxy.
func (p *pgFleet) Open(ctx context.Context, keyFile string, passphrase func() (string, error), identity string) (sessionstore.Store, error) {
	opts := append([]pgstore.Option{pgstore.WithKeyFile(keyFile), pgstore.WithKeyIdentity(identity), pgstore.WithoutListen()}, p.opts...)
	if passphrase != nil {
		opts = append(opts, pgstore.WithPassphrase(passphrase))
	}
	return pgstore.Open(ctx, p.pool, p.ns, opts...)
}

func (p *pgFleet) ReadRecords(ctx context.Context, ring *crypto.Keyring) ([]protocol.Record, error) {
	return pgstore.ReadRecords(ctx, p.pool, p.ns, ring, p.opts...)
}

func (p *pgFleet) ReadRecord(ctx context.Context, ring *crypto.Keyring, name string) (protocol.Record, error) {
	return pgstore.ReadRecord(ctx, p.pool, p.ns, ring, name, p.opts...)
}

func (p *pgFleet) Remove(ctx context.Context, name string) error {
	return pgstore.Remove(ctx, p.pool, p.ns, name, p.opts...)
}
