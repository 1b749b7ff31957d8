package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/pgtest"
	"github.com/sessionstore/sessionstore/pgstore"
)

// The scripts' PostgreSQL is the test binary's shared cluster
// (pgtest.Shared), started by the first script that asks for it and
// stopped by TestMain. Its tables get audit triggers: every row inserted
// or updated in the hosts and locks tables is logged, with its namespace,
// in the table audit, so that a script can tell that a command wrote no
// heartbeat and took no lock, even one deleted since.
var scriptsPG struct {
	once sync.Once
	c    *pgtest.Cluster
	err  error
}

// pgRuns numbers the scripts that ask for PostgreSQL: each gets its own
// namespace, also across runs of TestScripts (go test -count=N).
var pgRuns atomic.Int64

const auditSQL = `
CREATE TABLE public.audit (tbl text NOT NULL, namespace text NOT NULL);
CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
	INSERT INTO public.audit (tbl, namespace) VALUES (TG_TABLE_NAME, NEW.namespace);
	RETURN NEW;
END $$;
CREATE TRIGGER audit AFTER INSERT OR UPDATE ON sessionstore.hosts FOR EACH ROW EXECUTE FUNCTION public.audit();
CREATE TRIGGER audit AFTER INSERT OR UPDATE ON sessionstore.locks FOR EACH ROW EXECUTE FUNCTION public.audit();`

// scriptTB is a script as the testing.TB that pgtest.Shared reports a
// failure to.
type scriptTB struct {
	testing.TB
	ts *testscript.TestScript
}

func (s scriptTB) Helper()           {}
func (s scriptTB) Fatal(args ...any) { s.ts.Fatalf("%s", fmt.Sprint(args...)) }

// pg: start the tests' PostgreSQL if it is not running, and set $PGURL to
// its superuser's URL, $PGPORT_TEST to its port and $NS to a namespace of
// this script's own.
func cmdPostgres(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 0 {
		ts.Fatalf("usage: pg")
	}
	c := pgtest.Shared(scriptTB{ts: ts})
	scriptsPG.once.Do(func() {
		scriptsPG.c = c
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pool, err := pgxpool.New(ctx, c.URL())
		if scriptsPG.err = err; err != nil {
			return
		}
		defer pool.Close()
		k, err := crypto.GenerateKeyring(false)
		if scriptsPG.err = err; err != nil {
			return
		}
		s, err := pgstore.Open(ctx, pool, "setup", pgstore.WithKeyring(k), pgstore.WithoutListen()) // creates the tables
		if scriptsPG.err = err; err != nil {
			return
		}
		s.Close()
		_, scriptsPG.err = pool.Exec(ctx, auditSQL)
	})
	ts.Check(scriptsPG.err)
	ts.Setenv("PGURL", c.URL())
	ts.Setenv("PGPORT_TEST", strconv.Itoa(c.Port()))
	ts.Setenv("NS", fmt.Sprintf("script-%d", pgRuns.Add(1)))
}

// pgsql SQL [ARG...]: run SQL as the superuser of $PGURL, with ARGs as its
// parameters ($1, ...), and print each row it returns, its columns
// separated by spaces (bytea as text).
func cmdPgSQL(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: pgsql SQL [ARG...]")
	}
	out := ts.Stdout() // this command's output, even if it prints nothing
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ts.Getenv("PGURL"))
	ts.Check(err)
	defer conn.Close(context.Background())
	params := make([]any, len(args)-1)
	for i, a := range args[1:] {
		params[i] = a
	}
	rows, err := conn.Query(ctx, args[0], params...)
	ts.Check(err)
	for rows.Next() {
		vals, err := rows.Values()
		ts.Check(err)
		cols := make([]string, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			cols[i] = fmt.Sprint(v)
		}
		fmt.Fprintln(out, strings.Join(cols, " "))
	}
	if err := rows.Err(); err != nil {
		if neg {
			return
		}
		ts.Fatalf("pgsql: %v", err)
	}
	if neg {
		ts.Fatalf("pgsql succeeded")
	}
}

// openPgStore opens $NS on $PGURL with the key file key.
func openPgStore(ctx context.Context, ts *testscript.TestScript, key string) (sessionstore.Store, func()) {
	pool, err := pgxpool.New(ctx, ts.Getenv("PGURL"))
	ts.Check(err)
	s, err := pgstore.Open(ctx, pool, ts.Getenv("NS"), pgstore.WithKeyFile(ts.MkAbs(key)))
	if err != nil {
		pool.Close()
		ts.Fatalf("%v", err)
	}
	return s, func() { s.Close(); pool.Close() }
}
