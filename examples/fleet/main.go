// Command fleet is the cronjobs demo across hosts, on etcd:
//
//	go run ./examples/fleet          # the demo
//	go run ./examples/fleet -serve   # an etcd to try the commands on
//
// It starts a 3-member etcd cluster on loopback (each member a child
// process: this program re-executing itself), a local OAuth provider that
// rotates refresh tokens and hands out short-lived access tokens, and
// several worker processes, the "hosts", each with an etcd client and an
// etcdstore.Store of its own on one prefix. The hosts share one session
// through sessionstore.TokenSource and count their runs in a shared
// record with Update. Midway the demo kills (SIGKILL) the etcd member
// that leads the cluster. It shows that the fleet refreshes a token once
// per lifetime and never reuses a refresh token, that no update is lost
// across the leader change, that every call got a token or a clear error,
// and that etcd holds only age ciphertext.
//
// With -serve it starts one embedded etcd member on loopback instead, its
// data in a temporary directory, and prints the -etcd URL with example
// sessionstore and rekey command lines that use it. It serves until
// interrupted (SIGINT, SIGTERM), then stops etcd and removes the directory.
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
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

const (
	hosts         = 4
	before, after = 1500 * time.Millisecond, 1500 * time.Millisecond // the run before the leader is killed, and after the fleet writes again
	tokenLifetime = time.Second
	prefix        = "/sessionstore/fleet"
	authType      = "server"
	counter       = "runs"
	workerEnv     = "FLEET_WORKER"
	callTimeout   = 20 * time.Second // bounds each call of a worker: a hang is an error, not a wait
)

func main() {
	maybeRunMember()
	if id := os.Getenv(workerEnv); id != "" {
		if err := worker(id, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "host", id+":", err)
			os.Exit(1)
		}
		return
	}
	flags := flag.NewFlagSet("fleet", flag.ExitOnError)
	serveMode := flags.Bool("serve", false, "start one embedded etcd member on loopback and print its -etcd URL, until interrupted")
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "Usage:\n  go run ./examples/fleet          # the demo: hosts on a 3-member etcd cluster whose leader is killed\n  go run ./examples/fleet -serve   # one etcd member on loopback, to try sessionstore and rekey on\n")
	}
	flags.Parse(os.Args[1:])
	if flags.NArg() > 0 {
		flags.Usage()
		os.Exit(2)
	}
	if *serveMode {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := serve(ctx, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "fleet: error:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fleet: error:", err)
		os.Exit(1)
	}
}

// dial returns a client of every member that logs nothing: etcd's own
// messages would go through etcdstore.ClientLogger to a slog.Logger.
func dial(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 10 * time.Second,
		Logger:      etcdstore.ClientLogger(nil),
	})
}

// A host is a running worker process.
type host struct {
	id    int
	stdin io.WriteCloser
	lines chan string // its stdout, by lines; closed at its end
	wait  func() error
}

func (h *host) next(ctx context.Context) (string, error) {
	select {
	case l, ok := <-h.lines:
		if !ok {
			return "", fmt.Errorf("host %d ended early", h.id)
		}
		return l, nil
	case <-ctx.Done():
		return "", fmt.Errorf("host %d: %w", h.id, ctx.Err())
	}
}

// run is the demo's parent process.
func run(out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	say := func(tag, format string, a ...any) {
		fmt.Fprintf(out, "%-10s %s\n", "["+tag+"]", fmt.Sprintf(format, a...))
	}

	tmp, err := os.MkdirTemp("", "sessionstore-fleet-")
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
	self, err := os.Executable()
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "sessionstore fleet demo: %d hosts share one OAuth session on a 3-member etcd cluster\n\n", hosts)
	cluster, err := startCluster(3, filepath.Join(tmp, "etcd"), []string{self})
	if err != nil {
		return err
	}
	defer cluster.close()
	for _, m := range cluster.members {
		say("etcd", "member %s  %s  (pid %d)", m.name, m.endpoint, m.pid())
	}
	client, err := dial(cluster.endpoints())
	if err != nil {
		return err
	}
	defer client.Close()
	leader, err := cluster.leader(ctx, client)
	if err != nil {
		return err
	}
	say("etcd", "leader: %s", leader.name)

	srv := sessionstoretest.NewProvider(tokenLifetime)
	srv.SetRefreshDelay(20 * time.Millisecond) // a wider window for two hosts to race
	defer srv.Close()
	say("setup", "prefix           %s", prefix)
	say("setup", "key file         %s (%s…), the same on every host", keyFile, k.PublicKey(0)[:20])
	say("setup", "OAuth provider   %s (local; access tokens live %v; a refresh token works once)", srv.URL, tokenLifetime)

	// Log in once, as an operator would, and store the session with an
	// already expired access token.
	store, err := etcdstore.Open(ctx, client, prefix, etcdstore.WithKeyFile(keyFile))
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

	// Start the hosts, and release them at the same moment.
	var kids []*host
	for i := 1; i <= hosts; i++ {
		h, err := startHost(ctx, self, i, cluster.endpoints(), keyFile, srv.URL)
		if err != nil {
			return err
		}
		kids = append(kids, h)
		defer h.stdin.Close()
	}
	for _, h := range kids {
		if l, err := h.next(ctx); err != nil || l != "ready" {
			return fmt.Errorf("host %d did not start (%q, %v)", h.id, l, err)
		}
	}
	start := time.Now()
	say("setup", "started %d host processes, each with its own etcd client; releasing them together", hosts)
	for _, h := range kids {
		fmt.Fprintln(h.stdin, "go")
	}
	first := map[string]bool{}
	for _, h := range kids {
		l, err := h.next(ctx)
		if err != nil {
			return err
		}
		f := strings.Fields(l)
		if len(f) != 2 || f[0] != "first" {
			return fmt.Errorf("host %d said %q", h.id, l)
		}
		first[f[1]] = true
		say("host "+strconv.Itoa(h.id), "first API call made with access token %s", f[1])
	}
	st := srv.Stats()
	firstRefreshes := st.Refreshes
	say("check", "%d hosts started on an expired token: %d refresh at the provider, %d distinct access token(s)",
		hosts, firstRefreshes, len(first))

	// Kill the leader while the hosts work.
	time.Sleep(before)
	leader, err = cluster.leader(ctx, client)
	if err != nil {
		return err
	}
	count := func() int {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		a, err := store.Get(rctx, counter)
		if err != nil {
			return -1
		}
		n, _ := strconv.Atoi(a.AccessToken)
		return n
	}
	atKill := count()
	killedAt := time.Now()
	if err := leader.kill(); err != nil {
		return err
	}
	say("etcd", "killed the leader %s (SIGKILL, pid %d) while the hosts refresh and update", leader.name, leader.pid())
	newLeader, err := cluster.leader(ctx, client)
	if err != nil {
		return err
	}
	say("etcd", "%s is the new leader (seen %v after the kill)", newLeader.name, time.Since(killedAt).Round(10*time.Millisecond))
	for count() <= atKill {
		if ctx.Err() != nil {
			return fmt.Errorf("no host wrote after the leader died: %w", ctx.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	say("etcd", "the hosts write again %v after the kill (writes in flight at the kill wait out etcd's request timeout)", time.Since(killedAt).Round(100*time.Millisecond))
	time.Sleep(after)
	for _, h := range kids {
		h.stdin.Close() // the end of the run
	}

	// Each host's tally.
	type tally struct{ ok, refused, failed, incOK, incUnknown, incRetried int }
	var total tally
	var errs []string
	for _, h := range kids {
		var t tally
		for {
			l, err := h.next(ctx)
			if err != nil {
				return fmt.Errorf("host %d did not finish: %w", h.id, err)
			}
			if msg, ok := strings.CutPrefix(l, "error "); ok {
				errs = append(errs, fmt.Sprintf("host %d: %s", h.id, msg))
				continue
			}
			if _, err := fmt.Sscanf(l, "done %d %d %d %d %d %d", &t.ok, &t.refused, &t.failed, &t.incOK, &t.incUnknown, &t.incRetried); err != nil {
				return fmt.Errorf("host %d said %q", h.id, l)
			}
			break
		}
		if err := h.wait(); err != nil {
			return fmt.Errorf("host %d: %w", h.id, err)
		}
		say("host "+strconv.Itoa(h.id), "done: %d API calls succeeded, %d refused, %d failed; %d runs counted",
			t.ok, t.refused, t.failed, t.incOK)
		total.ok += t.ok
		total.refused += t.refused
		total.failed += t.failed
		total.incOK += t.incOK
		total.incUnknown += t.incUnknown
		total.incRetried += t.incRetried
	}
	for i, e := range errs {
		if i == 5 {
			say("errors", "… and %d more", len(errs)-i)
			break
		}
		say("errors", "%s", e)
	}

	// What etcd holds.
	runs, err := store.Get(ctx, counter)
	if err != nil {
		return err
	}
	stored, _ := strconv.Atoi(runs.AccessToken)
	resp, err := client.Get(ctx, prefix+"/records/", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	allAge := len(resp.Kvs) > 0
	for _, kv := range resp.Kvs {
		allAge = allAge && bytes.HasPrefix(kv.Value, []byte("age-encryption.org/v1\n")) && !bytes.Contains(kv.Value, []byte("access-"))
	}
	record := prefix + "/records/" + authType
	rec, err := client.Get(ctx, record)
	if err != nil || len(rec.Kvs) != 1 {
		return fmt.Errorf("reading %s: %v", record, err)
	}
	header, _, _ := bytes.Cut(rec.Kvs[0].Value, []byte("\n"))

	st = srv.Stats()
	fmt.Fprintf(out, "\nResults\n")
	fmt.Fprintf(out, "  leader killed                  %s (SIGKILL); %s took over\n", leader.name, newLeader.name)
	fmt.Fprintf(out, "  refreshes at the provider      %d in %v (each shared by all %d hosts; a token is renewed halfway through its %v life)\n", st.Refreshes, time.Since(start).Round(time.Second), hosts, tokenLifetime)
	fmt.Fprintf(out, "  invalid_grant (reused token)   %d\n", st.InvalidGrants)
	fmt.Fprintf(out, "  API calls                      %d served, %d refused by the API, %d failed in hosts (with a clear error)\n", total.ok, st.APIRefused, total.failed)
	fmt.Fprintf(out, "  runs counted with Update       %d confirmed, %d stored in etcd, %d retried after a refused write, %d of unknown outcome\n", total.incOK, stored, total.incRetried, total.incUnknown)
	fmt.Fprintf(out, "  on etcd                        %d record(s) under %s/records/; %s: %d bytes, first line %q (age: no plaintext)\n", len(resp.Kvs), prefix, record, len(rec.Kvs[0].Value), header)

	var failed []string
	if firstRefreshes != 1 || len(first) != 1 {
		failed = append(failed, "the first storm was not one refresh")
	}
	if st.InvalidGrants != 0 {
		failed = append(failed, "a refresh token was used twice")
	}
	if stored < total.incOK || stored > total.incOK+total.incUnknown {
		failed = append(failed, "an update was lost")
	}
	if total.ok == 0 || !allAge || string(header) != "age-encryption.org/v1" {
		failed = append(failed, "nothing served, or plaintext on etcd")
	}
	if len(failed) > 0 {
		return errors.New("the demo saw a failure: " + strings.Join(failed, "; "))
	}
	fmt.Fprintln(out, "\nOK: no refresh token was used twice, no update was lost, every call got a token or a clear error, though the etcd leader died.")
	return nil
}

// startHost starts worker process id.
func startHost(ctx context.Context, self string, id int, endpoints []string, keyFile, url string) (*host, error) {
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), workerEnv+"="+strconv.Itoa(id),
		"FLEET_ETCD="+strings.Join(endpoints, ","), "FLEET_KEY="+keyFile, "FLEET_URL="+url)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &host{id: id, stdin: stdin, lines: make(chan string, 100)}
	var once sync.Once
	var werr error
	h.wait = func() error {
		once.Do(func() { werr = cmd.Wait() })
		return werr
	}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	return h, nil
}

// worker is one host: its own etcd client and Store; it shares the stored
// session through TokenSource, calls the API and counts a run with Update,
// from "go" on its stdin until stdin closes.
func worker(id string, stdin io.Reader, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	url := os.Getenv("FLEET_URL")
	client, err := dial(strings.Split(os.Getenv("FLEET_ETCD"), ","))
	if err != nil {
		return err
	}
	defer client.Close()
	store, err := etcdstore.Open(ctx, client, prefix, etcdstore.WithKeyFile(os.Getenv("FLEET_KEY")))
	if err != nil {
		return err
	}
	defer store.Close()
	ts := sessionstore.TokenSource(ctx, store, authType, sessionstore.ConfigRefresher(sessionstoretest.ConfigFor(url)))
	api := oauth2.NewClient(ctx, ts)

	var mu sync.Mutex // stdout lines are whole
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, format+"\n", a...)
	}
	say("ready")
	in := bufio.NewScanner(stdin)
	if !in.Scan() {
		return nil
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, stdin)
		close(stop)
	}()

	var ok, refused, failed, incOK, incUnknown, incRetried int
	for n := 0; ; n++ {
		select {
		case <-stop:
			say("done %d %d %d %d %d %d", ok, refused, failed, incOK, incUnknown, incRetried)
			return nil
		default:
		}
		// A token, and one API call with it.
		tok, err := call(ctx, func() (*oauth2.Token, error) { return ts.Token() })
		if err == nil {
			_, err = call(ctx, func() (struct{}, error) {
				return struct{}{}, sessionstoretest.CallAPI(ctx, api, url+"/api/me")
			})
		}
		switch {
		case err == nil:
			ok++
		case strings.Contains(err.Error(), "API answered 401"):
			refused++
		default:
			failed++
			say("error %s", oneLine(err))
		}
		if n == 0 {
			at := "(none)"
			if tok != nil {
				at = tok.AccessToken
			}
			say("first %s", at)
		}
		// One run counted. A write refused before it was applied is tried
		// again; one of unknown outcome is counted apart.
		for attempt := 1; ; attempt++ {
			_, err := call(ctx, func() (sessionstore.AuthObject, error) {
				return store.Update(ctx, counter, increment)
			})
			if err == nil {
				incOK++
				break
			}
			if errors.Is(err, sessionstore.ErrOutcomeUnknown) || strings.Contains(err.Error(), "no answer within") {
				incUnknown++
				say("error %s", oneLine(err))
				break
			}
			if attempt == 5 {
				failed++
				say("error %s", oneLine(err))
				break
			}
			incRetried++
			say("error %s (not applied; tried again)", oneLine(err))
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call runs f, and reports an error if it does not return within
// callTimeout: every caller gets a value or a clear error.
func call[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(callTimeout):
		var zero T
		return zero, fmt.Errorf("no answer within %v", callTimeout)
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// increment adds one to the counter kept in AccessToken.
func increment(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
	n, _ := strconv.Atoi(cur.AccessToken)
	cur.AccessToken = strconv.Itoa(n + 1)
	return cur, nil
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
