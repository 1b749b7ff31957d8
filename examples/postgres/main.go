// Command postgres is the cron jobs demo (examples/cronjobs) on PostgreSQL,
// with hosts as separate processes:
//
//	go run ./examples/postgres                      # a throwaway local cluster
//	go run ./examples/postgres -postgres URL        # your server
//
// Without -postgres it makes a cluster with the system's initdb and pg_ctl
// (the initdb on PATH, else /usr/lib/postgresql/*/bin; as root, run as the
// postgres OS user) in a temporary directory, on a loopback port, and
// removes it at the end. It starts a local OAuth provider and several
// worker processes (this program re-executing itself), each with a pgstore
// Store on its own pool, sharing one session through
// sessionstore.TokenSource. It shows that the fleet refreshes the token
// once per lifetime, never once per process; that no rotating refresh token
// is used twice; that the key is rotated in staged steps while they run;
// and that the table holds only age ciphertext.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/pgstore"
)

const (
	workers       = 4
	runFor        = 6 * time.Second
	tokenLifetime = time.Second
	authType      = "server"
	workerEnv     = "PGDEMO_WORKER"
)

func main() {
	if id := os.Getenv(workerEnv); id != "" {
		if err := worker(id); err != nil {
			fmt.Fprintln(os.Stderr, "worker", id+":", err)
			os.Exit(1)
		}
		return
	}
	url := flag.String("postgres", "", "a PostgreSQL URL; none: a throwaway local cluster")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *url); err != nil {
		fmt.Fprintln(os.Stderr, "postgres demo: error:", err)
		os.Exit(1)
	}
}

// run is the demo's parent process, on the server of url ("": a
// throwaway local cluster).
func run(ctx context.Context, out io.Writer, url string) (err error) {
	say := func(tag, format string, a ...any) {
		fmt.Fprintf(out, "%-10s %s\n", "["+tag+"]", fmt.Sprintf(format, a...))
	}
	fmt.Fprintf(out, "sessionstore demo: %d processes share one OAuth session in PostgreSQL\n\n", workers)
	if url == "" {
		c, err := startCluster(ctx)
		if err != nil {
			return fmt.Errorf("starting a local PostgreSQL: %w", err)
		}
		defer func() {
			if serr := c.stop(); serr != nil && err == nil {
				err = fmt.Errorf("removing the local PostgreSQL: %w", serr)
			}
			say("cleanup", "stopped the local PostgreSQL and removed %s", c.dir)
		}()
		url = c.URL()
		say("setup", "local PostgreSQL  %s (initdb in %s)", url, c.dir)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	tmp, err := os.MkdirTemp("", "sessionstore-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	keyFile := filepath.Join(tmp, "sessionstore.key")
	k, err := crypto.GenerateKeyring(false)
	if err != nil {
		return err
	}
	if err := crypto.CreateKeyFile(keyFile, k); err != nil {
		return err
	}
	srv, err := newProvider(tokenLifetime)
	if err != nil {
		return err
	}
	defer srv.Close()
	ns := fmt.Sprintf("demo-%d", time.Now().UnixNano()) // a namespace of this run's own
	say("setup", "namespace         %q (tables in schema %q)", ns, pgstore.DefaultSchema)
	say("setup", "key file          %s (%s…)", keyFile, k.PublicKey(0)[:20])
	say("setup", "OAuth provider    %s (local; access tokens live %v; a refresh token works once)", srv.URL, tokenLifetime)

	// Log in once, as an operator would, and store the session; make its
	// access token expired, as for jobs that start long after.
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	store, err := pgstore.Open(ctx, pool, ns, pgstore.WithKeyFile(keyFile))
	if err != nil {
		return err
	}
	defer store.Close()
	defer pool.Exec(context.Background(), `DELETE FROM sessionstore.records WHERE namespace = $1`, ns)
	tok, err := srv.config().PasswordCredentialsToken(ctx, "demo", "demo")
	if err != nil {
		return err
	}
	session := sessionstore.FromToken(tok)
	srv.expireAll()
	session.Expiry = time.Now().Add(-time.Minute)
	if err := store.Set(ctx, authType, session); err != nil {
		return err
	}
	store.Close() // from here on, the workers are the only hosts
	say("setup", "logged in once (password grant); stored as %q with an already expired access token", authType)

	// Start the workers, and release them at the same moment.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	type kid struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines *bufio.Scanner
	}
	var kids []kid
	for i := 1; i <= workers; i++ {
		cmd := exec.CommandContext(ctx, self)
		cmd.Env = append(os.Environ(), workerEnv+"="+strconv.Itoa(i),
			"PGDEMO_URL="+url, "PGDEMO_NS="+ns, "PGDEMO_KEY="+keyFile, "PGDEMO_PROVIDER="+srv.URL)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		defer cmd.Process.Kill()
		kids = append(kids, kid{cmd, stdin, bufio.NewScanner(stdout)})
	}
	for _, k := range kids {
		if !k.lines.Scan() || k.lines.Text() != "ready" {
			return fmt.Errorf("a worker did not start")
		}
	}
	say("setup", "started %d worker processes, each with its own pool and Store; releasing them together", workers)
	for _, k := range kids {
		k.stdin.Close()
	}

	// Each worker's first token: all the same, from one refresh.
	first := map[string]bool{}
	for i, k := range kids {
		if !k.lines.Scan() {
			return fmt.Errorf("worker %d ended early", i+1)
		}
		f := strings.Fields(k.lines.Text())
		if len(f) != 2 || f[0] != "first" {
			return fmt.Errorf("worker %d said %q", i+1, k.lines.Text())
		}
		first[f[1]] = true
		say("worker "+strconv.Itoa(i+1), "first API call made with access token %s", f[1])
	}
	st := srv.Stats()
	say("check", "%d workers started on an expired token: %d refresh at the provider, %d distinct access token(s)",
		workers, st.Refreshes, len(first))

	// Rotate the key in staged steps while the workers keep calling the
	// API, as rekey -stage, rekey -postgres and rekey -retire do. Each
	// worker rereads the key file every two seconds; each step waits for
	// their heartbeats to show they are ready.
	time.Sleep(runFor / 8)
	if err := rotate(ctx, pool, ns, keyFile, say); err != nil {
		return err
	}

	var wg sync.WaitGroup
	results := make([]string, len(kids))
	for i, k := range kids {
		wg.Go(func() {
			if k.lines.Scan() {
				results[i] = k.lines.Text()
			}
			k.cmd.Wait()
		})
	}
	wg.Wait()
	totalOK, totalFailed := 0, 0
	for i, r := range results {
		var ok, failed int
		if _, err := fmt.Sscanf(r, "done %d %d", &ok, &failed); err != nil {
			return fmt.Errorf("worker %d did not finish cleanly (%q)", i+1, r)
		}
		totalOK += ok
		totalFailed += failed
		say("worker "+strconv.Itoa(i+1), "done: %d API calls succeeded, %d failed", ok, failed)
	}

	// What is in the table.
	var record []byte
	if err := pool.QueryRow(ctx, `SELECT record FROM sessionstore.records WHERE namespace = $1 AND name = $2`, ns, authType).Scan(&record); err != nil {
		return err
	}
	header, _, _ := bytes.Cut(record, []byte("\n"))
	ring, err := crypto.LoadKeyring(keyFile)
	if err != nil {
		return err
	}
	st = srv.Stats()
	fmt.Fprintf(out, "\nResults\n")
	fmt.Fprintf(out, "  refreshes at the provider      %d in %v (each shared by all %d processes; a token is renewed halfway through its %v life)\n", st.Refreshes, runFor, workers, tokenLifetime)
	fmt.Fprintf(out, "  invalid_grant (reused token)   %d\n", st.InvalidGrants)
	fmt.Fprintf(out, "  API calls                      %d succeeded, %d refused by the API, %d failed in workers\n", totalOK, st.APIRefused, totalFailed)
	fmt.Fprintf(out, "  key rotated while running      yes, staged; key file now holds %d identity\n", ring.Len())
	fmt.Fprintf(out, "  in the table                   sessionstore.records, row %q: %d bytes, first line %q (an age file: no plaintext)\n", authType, len(record), header)

	if st.InvalidGrants != 0 || totalFailed != 0 || st.APIRefused != 0 || len(first) != 1 || ring.Len() != 1 || string(header) != "age-encryption.org/v1" {
		return fmt.Errorf("the demo saw a failure (see above)")
	}
	fmt.Fprintln(out, "\nOK: every call succeeded, no refresh token was used twice, the key changed under running processes.")
	return nil
}

// rotate runs the three steps of a staged rotation, each retried until
// the workers' heartbeats show them ready.
func rotate(ctx context.Context, pool *pgxpool.Pool, ns, keyFile string, say func(tag, format string, a ...any)) error {
	staged, err := pgstore.Stage(ctx, keyFile, pgstore.StageOptions{})
	if err != nil {
		return err
	}
	say("rekey", "step 1: staged key %s…, decrypt-only", staged.PublicKey[:20])
	var rep *pgstore.RotateReport
	start := time.Now()
	if err := untilReady(ctx, func() (err error) {
		rep, err = pgstore.Promote(ctx, pool, ns, keyFile, pgstore.RotateOptions{})
		return err
	}); err != nil {
		return err
	}
	say("rekey", "step 2: promoted once all %d live hosts held it (after %v); resealed %d record(s)",
		len(rep.Hosts), time.Since(start).Round(100*time.Millisecond), len(rep.Records))
	start = time.Now()
	if err := untilReady(ctx, func() (err error) {
		rep, err = pgstore.Retire(ctx, pool, ns, keyFile, pgstore.RotateOptions{})
		return err
	}); err != nil {
		return err
	}
	say("rekey", "step 3: retired %d old key(s) once every live host used the new primary (after %v)",
		rep.Retired, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// untilReady calls step until it does not fail with ErrHostsNotReady.
func untilReady(ctx context.Context, step func() error) error {
	for {
		err := step()
		if !errors.Is(err, pgstore.ErrHostsNotReady) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// worker is one process of the fleet: it shares the stored session
// through TokenSource and calls the API until its time is up.
func worker(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := os.Getenv("PGDEMO_PROVIDER")
	pool, err := pgxpool.New(ctx, os.Getenv("PGDEMO_URL"))
	if err != nil {
		return err
	}
	defer pool.Close()
	store, err := pgstore.Open(ctx, pool, os.Getenv("PGDEMO_NS"), pgstore.WithKeyFile(os.Getenv("PGDEMO_KEY")))
	if err != nil {
		return err
	}
	defer store.Close()
	p := &provider{URL: url}
	ts := sessionstore.TokenSource(ctx, store, authType, sessionstore.ConfigRefresher(p.config()))
	client := oauth2.NewClient(ctx, ts)

	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // the parent closes stdin to start us all at once

	ok, failed := 0, 0
	for end := time.Now().Add(runFor); time.Now().Before(end); {
		tok, err := ts.Token()
		if err == nil {
			err = callAPI(ctx, client, url+"/api/me")
		}
		if err != nil {
			failed++
			fmt.Fprintf(os.Stderr, "worker %s: %v\n", id, err)
		} else {
			ok++
		}
		if ok+failed == 1 {
			at := "(none)"
			if tok != nil {
				at = tok.AccessToken
			}
			fmt.Println("first", at)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("done", ok, failed)
	return nil
}
