// Command cronjobs is sessionstore's demo, the README's first command:
//
//	go run ./examples/cronjobs
//
// It starts a local OAuth provider and API (loopback only), a store in a
// temporary directory with a generated key, and several worker processes
// (this program re-executing itself) that share one session through
// sessionstore.TokenSource, as cron jobs on one host would. It shows that they
// refresh the token once per lifetime, never once per process; that no
// rotating refresh token is used twice; that the key can be rotated while
// they run; and that what is on disk is age-encrypted.
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

const (
	workers       = 4
	runFor        = 4 * time.Second
	tokenLifetime = time.Second
	authType      = "server"
	workerEnv     = "CRONJOBS_WORKER"
)

func main() {
	if id := os.Getenv(workerEnv); id != "" {
		if err := worker(id); err != nil {
			fmt.Fprintln(os.Stderr, "worker", id+":", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cronjobs: error:", err)
		os.Exit(1)
	}
}

// run is the demo's parent process.
func run(out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	say := func(tag, format string, a ...any) {
		fmt.Fprintf(out, "%-10s %s\n", "["+tag+"]", fmt.Sprintf(format, a...))
	}

	tmp, err := os.MkdirTemp("", "sessionstore-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir, keyFile := filepath.Join(tmp, "sessions"), filepath.Join(tmp, "sessionstore.key")
	k, err := crypto.GenerateKeyring(false)
	if err != nil {
		return err
	}
	if err := crypto.CreateKeyFile(keyFile, k); err != nil {
		return err
	}
	srv := sessionstoretest.NewProvider(tokenLifetime)
	defer srv.Close()

	fmt.Fprintf(out, "sessionstore demo: %d cron jobs share one OAuth session\n\n", workers)
	say("setup", "store directory  %s", dir)
	say("setup", "key file         %s (%s…)", keyFile, k.PublicKey(0)[:20])
	say("setup", "OAuth provider   %s (local; access tokens live %v; a refresh token works once)", srv.URL, tokenLifetime)

	// Log in once, as an operator would, and store the session; make its
	// access token expired, as for jobs that start long after.
	store, err := filestore.Open(dir, filestore.WithKeyFile(keyFile))
	if err != nil {
		return err
	}
	defer store.Close()
	tok, err := sessionstoretest.ConfigFor(srv.URL).PasswordCredentialsToken(ctx, sessionstoretest.Username, sessionstoretest.Password)
	if err != nil {
		return err
	}
	session := sessionstore.FromToken(tok)
	srv.ExpireAll()
	session.Expiry = time.Now().Add(-time.Minute)
	if err := store.Set(ctx, authType, session); err != nil {
		return err
	}
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
			"CRONJOBS_DIR="+dir, "CRONJOBS_KEY="+keyFile, "CRONJOBS_URL="+srv.URL)
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
	say("setup", "started %d worker processes; releasing them together", workers)
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

	// Rotate the key while the workers keep calling the API.
	time.Sleep(runFor / 2) // let them work a while before the rotation
	say("rekey", "rotating the key while the workers run…")
	rep, err := filestore.Rotate(ctx, keyFile, []string{dir}, filestore.RotateOptions{})
	if err != nil {
		return err
	}
	resealed := 0
	for _, r := range rep.Records {
		if r.Resealed {
			resealed++
		}
	}
	// A record that a worker rewrote between steps 1 and 2 is already
	// under the new key: rekey has nothing to reseal there.
	say("rekey", "new primary %s…; %d of %d record(s) resealed by rekey, %d already rewritten under the new key by a worker; retired %d old key(s)",
		rep.NewPublicKey[:20], resealed, len(rep.Records), len(rep.Records)-resealed, rep.Retired)

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

	// What is on disk.
	record, err := os.ReadFile(filepath.Join(dir, authType+".age"))
	if err != nil {
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
	fmt.Fprintf(out, "  key rotated while running      yes; key file now holds %d identity\n", ring.Len())
	fmt.Fprintf(out, "  on disk                        %s: %d bytes, first line %q (an age file: no plaintext)\n", filepath.Join("sessions", authType+".age"), len(record), header)

	if st.InvalidGrants != 0 || totalFailed != 0 || st.APIRefused != 0 || len(first) != 1 || ring.Len() != 1 || string(header) != "age-encryption.org/v1" {
		return fmt.Errorf("the demo saw a failure (see above)")
	}
	fmt.Fprintln(out, "\nOK: every call succeeded, no refresh token was used twice, the key changed under running processes.")
	return nil
}

// worker is one cron job: it shares the stored session through
// TokenSource and calls the API until its time is up.
func worker(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	url := os.Getenv("CRONJOBS_URL")
	store, err := filestore.Open(os.Getenv("CRONJOBS_DIR"), filestore.WithKeyFile(os.Getenv("CRONJOBS_KEY")))
	if err != nil {
		return err
	}
	defer store.Close()
	ts := sessionstore.TokenSource(ctx, store, authType, sessionstore.ConfigRefresher(sessionstoretest.ConfigFor(url)))
	client := oauth2.NewClient(ctx, ts)

	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // the parent closes stdin to start us all at once

	ok, failed := 0, 0
	for end := time.Now().Add(runFor); time.Now().Before(end); {
		tok, err := ts.Token()
		if err == nil {
			err = sessionstoretest.CallAPI(ctx, client, url+"/api/me")
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
