package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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

// readmeSQL returns the README's ```sql block that holds what.
func readmeSQL(t *testing.T, what string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		if strings.Contains(m[1], what) {
			return m[1]
		}
	}
	t.Fatalf("README.md has no sql block with %q", what)
	return ""
}

// inSchema is README SQL for schema and role instead of sessionstore and
// sessionstore_app.
func inSchema(sql, schema, role string) string {
	sql = strings.ReplaceAll(sql, "sessionstore_app", "\x00")
	sql = regexp.MustCompile(`\bsessionstore\b`).ReplaceAllString(sql, schema)
	return strings.ReplaceAll(sql, "\x00", role)
}

// TestLeastPrivilegeRole checks the README's pgstore SQL: the tables it
// lists are those Open's error asks for, and a role with only its GRANTs
// can use the Store and the functions the commands call.
func TestLeastPrivilegeRole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := pgtest.Shared(t)
	id := fmt.Sprintf("%d", time.Now().UnixNano())
	schema, role := "grants_"+id, "app_"+id
	roleURL := c.CreateRole(t, role, "secret-"+id)
	k, err := crypto.GenerateKeyring(false)
	if err != nil {
		t.Fatal(err)
	}
	rolePool, err := pgxpool.New(ctx, roleURL)
	if err != nil {
		t.Fatal(err)
	}
	defer rolePool.Close()

	// The role may not create the tables: Open's error holds the SQL,
	// which is the README's.
	tables := readmeSQL(t, "CREATE TABLE")
	_, err = pgstore.Open(ctx, rolePool, "ns", pgstore.WithSchema(schema), pgstore.WithKeyring(k))
	if err == nil {
		t.Fatal("a role without CREATE opened a Store on a missing schema")
	}
	if got := strings.ReplaceAll(err.Error(), `"`+schema+`"`, "sessionstore"); !strings.Contains(got, strings.TrimSpace(tables)) {
		t.Errorf("Open's error does not hold the README's tables:\n%s\nREADME:\n%s", err, tables)
	}

	c.Exec(t, inSchema(tables, schema, role))
	c.Exec(t, inSchema(readmeSQL(t, "GRANT"), schema, role))

	opts := []pgstore.Option{pgstore.WithSchema(schema), pgstore.WithKeyring(k)}
	listening, err := pgstore.Open(ctx, rolePool, "ns", opts...)
	if err != nil {
		t.Fatalf("Open as the role: %v", err)
	}
	defer listening.Close()
	polling, err := pgstore.Open(ctx, rolePool, "ns", append(opts, pgstore.WithoutListen())...)
	if err != nil {
		t.Fatalf("Open WithoutListen as the role: %v", err)
	}
	defer polling.Close()
	a := sessionstore.AuthObject{AccessToken: "secret-a", RefreshToken: "secret-r"}
	if err := listening.Set(ctx, "server", a); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got, err := polling.Get(ctx, "server"); err != nil || got.AccessToken != "secret-a" {
		t.Fatalf("Get: %v, %v", got.AccessToken, err)
	}
	if _, err := polling.Update(ctx, "server", func(old sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
		old.AccessToken = "secret-b"
		return old, nil
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := listening.Get(ctx, "server")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got.AccessToken == "secret-b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listening Store still serves %q", got.AccessToken)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := listening.Set(ctx, "other", a); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := polling.Delete(ctx, "other"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	recs, err := pgstore.ReadRecords(ctx, rolePool, "ns", k, pgstore.WithSchema(schema))
	if err != nil || len(recs) != 1 || recs[0].Err != nil {
		t.Fatalf("ReadRecords: %v, %+v", err, recs)
	}
	hosts, err := pgstore.Hosts(ctx, rolePool, "ns", pgstore.WithSchema(schema))
	if err != nil || len(hosts) != 2 {
		t.Fatalf("Hosts: %v, %d hosts, want 2", err, len(hosts))
	}
	if err := pgstore.Remove(ctx, rolePool, "ns", "server", pgstore.WithSchema(schema)); err != nil {
		t.Fatalf("Remove: %v", err)
	}
}
