package cliutil

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DialTimeout bounds connecting to etcd or PostgreSQL and the first request.
const DialTimeout = 10 * time.Second

// Postgres returns a pool of connections to the server of connString (a
// libpq URL or key=value string; "" takes libpq's PG* environment
// variables), after one query has reached it within ctx. The caller
// closes the pool. Errors name the server by user, host, port and
// database, quoted, never by a password.
func Postgres(ctx context.Context, connString string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// pgconn's parse errors show the string with its password redacted.
		return nil, fmt.Errorf("-postgres: %w", err)
	}
	name := PostgresName(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", name, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("postgres %s did not answer in time (is it running, and is -postgres right?): %w", name, err)
		}
		return nil, fmt.Errorf("postgres %s: %w", name, err)
	}
	return pool, nil
}

// PostgresName names the server of cfg in messages: "user@host:port/db",
// quoted; never the password.
func PostgresName(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return strconv.Quote(fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database))
}

// PostgresFlag is connString as a -postgres argument to print in a
// command to run next: quoted, or "URL" when it holds a password.
func PostgresFlag(connString string) string {
	if u, err := url.Parse(connString); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return "URL"
		}
	}
	if strings.Contains(strings.ToLower(connString), "password") {
		return "URL"
	}
	return strconv.Quote(connString)
}
