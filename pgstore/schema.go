package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaSQL creates the tables in schema s (an identifier, quoted).
func schemaSQL(s string) string {
	return strings.ReplaceAll(`CREATE SCHEMA IF NOT EXISTS {S};
CREATE SEQUENCE IF NOT EXISTS {S}.versions;
CREATE TABLE IF NOT EXISTS {S}.records (
    namespace text NOT NULL,
    name text NOT NULL,
    record bytea NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE IF NOT EXISTS {S}.locks (
    namespace text NOT NULL,
    name text NOT NULL,
    holder text NOT NULL,
    generation bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE IF NOT EXISTS {S}.hosts (
    namespace text NOT NULL,
    id text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    fingerprints text[] NOT NULL,
    written timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, id)
);`, "{S}", s)
}

// tables are the names of a schema's tables and sequence, quoted.
type tables struct {
	schema, records, locks, hosts, versions string
	channel                                 string // of the records' notifications
}

func tablesIn(schema string) tables {
	q := pgx.Identifier{schema}.Sanitize()
	return tables{schema: q, records: q + ".records", locks: q + ".locks", hosts: q + ".hosts",
		versions: q + ".versions", channel: "sessionstore:" + schema}
}

// ensureSchema creates the tables if any is missing, one process at a time
// (an advisory lock: concurrent CREATE ... IF NOT EXISTS can fail). A role
// that may not create them gets an error with the SQL to run.
func ensureSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	t := tablesIn(schema)
	var ok bool
	err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL
		AND to_regclass($3) IS NOT NULL AND to_regclass($4) IS NOT NULL`,
		t.records, t.locks, t.hosts, t.versions).Scan(&ok)
	if err != nil {
		return fmt.Errorf("pgstore: checking the tables of schema %s: %w", t.schema, err)
	}
	if ok {
		return nil
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sessionstore schema'))`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schemaSQL(t.schema))
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: creating the tables of schema %s: %w; a role that may not create them needs them made first, by one that may:\n%s",
			t.schema, err, schemaSQL(t.schema))
	}
	return nil
}

// noTables adds a hint to PostgreSQL's undefined_table error: the first
// Open of a namespace creates the tables.
func noTables(t tables, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" {
		return fmt.Errorf("%w (the tables of schema %s do not exist yet: Open creates them)", err, t.schema)
	}
	return err
}
