package pgstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/pgstore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

// childSpec is what a child process ("another host") needs to know. Each
// child opens a pool of its own on url.
type childSpec struct {
	role  string
	url   string // the database
	ns    string
	key   string
	name  string
	n     int
	oauth string        // the sessionstoretest.Provider, for token children
	ttl   time.Duration // WithLockTTL; 0: the default
}

func (c childSpec) env() []string {
	return []string{childEnv + "=" + c.role, "SS_PG=" + c.url, "SS_NS=" + c.ns, "SS_KEY=" + c.key,
		"SS_NAME=" + c.name, "SS_N=" + strconv.Itoa(c.n), "SS_OAUTH=" + c.oauth, "SS_TTL=" + c.ttl.String()}
}

// A child is a running child process, with its stdin and its stdout by
// lines.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// startChild starts a child process. Its stderr goes to the test log. It
// is killed when the test ends.
func startChild(t *testing.T, ctx context.Context, c childSpec) *child {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), c.env()...)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = testWriter{t}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &child{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
}

// startChildren starts n children of spec c and waits until each is
// ready.
func startChildren(t *testing.T, ctx context.Context, n int, c childSpec) []*child {
	t.Helper()
	kids := make([]*child, n)
	for i := range kids {
		kids[i] = startChild(t, ctx, c)
	}
	for _, k := range kids {
		k.expect(t, "ready")
	}
	return kids
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("child: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// expect reads the child's next line and checks its first word.
func (k *child) expect(t *testing.T, word string) []string {
	t.Helper()
	require.True(t, k.out.Scan(), "child ended before %q: %v", word, k.out.Err())
	f := strings.Fields(k.out.Text())
	require.NotEmpty(t, f)
	require.Equal(t, word, f[0], "child said %q", k.out.Text())
	return f
}

// runChild runs a child process's role.
func runChild(role string) int {
	c := childSpec{role: role, url: os.Getenv("SS_PG"), ns: os.Getenv("SS_NS"), key: os.Getenv("SS_KEY"),
		name: os.Getenv("SS_NAME"), oauth: os.Getenv("SS_OAUTH")}
	c.n, _ = strconv.Atoi(os.Getenv("SS_N"))
	c.ttl, _ = time.ParseDuration(os.Getenv("SS_TTL"))
	f := children[role]
	if f == nil {
		fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, c.url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()
	opts := []pgstore.Option{pgstore.WithKeyFile(c.key)}
	if c.ttl > 0 {
		opts = append(opts, pgstore.WithLockTTL(c.ttl))
	}
	s, err := pgstore.Open(ctx, pool, c.ns, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	if err := f(ctx, s, c); err != nil {
		fmt.Fprintln(os.Stderr, role+":", err)
		return 1
	}
	return 0
}

// stdinClosed returns a channel closed when stdin is.
func stdinClosed() chan struct{} {
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	return stop
}

var children = map[string]func(context.Context, *pgstore.Store, childSpec) error{
	// idle: a host that only keeps its Store open (and its heartbeat
	// going) until stdin closes.
	"idle": func(ctx context.Context, s *pgstore.Store, c childSpec) error {
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		fmt.Println("done")
		return nil
	},
	// increment: wait for stdin to close (the start signal), then n
	// Updates of the counter.
	"increment": func(ctx context.Context, s *pgstore.Store, c childSpec) error {
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		for range c.n {
			if _, err := s.Update(ctx, c.name, increment); err != nil {
				return err
			}
		}
		fmt.Println("done")
		return nil
	},
	// hold: an Update that says "holding" with the lock held, waits for a
	// line on stdin, and then returns "held" as the new value; it prints
	// how that ended: "stored", or "lost" (sessionstore.ErrLockLost).
	"hold": func(ctx context.Context, s *pgstore.Store, c childSpec) error {
		in := bufio.NewScanner(os.Stdin)
		_, err := s.Update(ctx, c.name, func(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
			fmt.Println("holding", cur.AccessToken)
			in.Scan()
			cur.AccessToken = "held"
			return cur, nil
		})
		switch {
		case errors.Is(err, sessionstore.ErrLockLost):
			fmt.Println("lost")
		case err != nil:
			return err
		default:
			fmt.Println("stored")
		}
		return nil
	},
	// ack: after a line on stdin, until stdin closes, increment the
	// counter c.name with Update and print "acked N UNIXNANO" after each
	// Update that returned N, with the wall-clock time it returned, or
	// "unknown" after one whose outcome is unknown.
	"ack": func(ctx context.Context, s *pgstore.Store, c childSpec) error {
		fmt.Println("ready")
		in := bufio.NewScanner(os.Stdin)
		if !in.Scan() {
			return nil
		}
		stop := stdinClosed()
		for {
			select {
			case <-stop:
				fmt.Println("done")
				return nil
			default:
			}
			a, err := s.Update(ctx, c.name, increment)
			if err != nil {
				if errors.Is(err, sessionstore.ErrOutcomeUnknown) {
					fmt.Println("unknown")
				}
				fmt.Fprintln(os.Stderr, "ack:", err)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			fmt.Println("acked", a.AccessToken, time.Now().UnixNano())
		}
	},
	// token: wait for stdin to close (the start signal), get a token
	// through sessionstore.TokenSource, call the API once, print the
	// access token.
	"token": func(ctx context.Context, s *pgstore.Store, c childSpec) error {
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		ts := sessionstore.TokenSource(ctx, s, c.name, sessionstore.ConfigRefresher(sessionstoretest.ConfigFor(c.oauth)))
		tok, err := ts.Token()
		if err != nil {
			var re *oauth2.RetrieveError
			if errors.As(err, &re) {
				fmt.Println("refresh-error", re.ErrorCode, re.Response.StatusCode)
				return nil
			}
			return err
		}
		if err := sessionstoretest.CallAPI(ctx, oauth2.NewClient(ctx, ts), c.oauth+"/api/me"); err != nil {
			return err
		}
		fmt.Println("token", tok.AccessToken)
		return nil
	},
	// health: wait for stdin to close (the start signal), then Token
	// twice; print "result FIRST SECOND", each one of: token, needs-login
	// (ErrNeedsLogin), provider (ErrNeedsLogin with the provider's
	// invalid_grant: this host marked it), error-CODE (a provider error
	// without ErrNeedsLogin).
	"health": func(ctx context.Context, s *pgstore.Store, c childSpec) error {
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		ts := sessionstore.TokenSource(ctx, s, c.name, sessionstore.ConfigRefresher(sessionstoretest.ConfigFor(c.oauth)))
		var words []string
		for range 2 {
			_, err := ts.Token()
			var re *oauth2.RetrieveError
			switch {
			case err == nil:
				words = append(words, "token")
			case errors.Is(err, sessionstore.ErrNeedsLogin) && errors.As(err, &re) && re.ErrorCode == "invalid_grant":
				words = append(words, "provider")
			case errors.Is(err, sessionstore.ErrNeedsLogin):
				words = append(words, "needs-login")
			case errors.As(err, &re):
				words = append(words, "error-"+re.ErrorCode)
			default:
				return err
			}
		}
		fmt.Println("result", words[0], words[1])
		return nil
	},
	"fleet": fleetChild,
}

// fleetChild is the "fleet" role: after a line on stdin, until stdin
// closes, it gets a token through sessionstore.TokenSource, calls the API
// with it, and increments the counter c.name+"-counter" with Update. A
// write refused before it was applied is tried again; one whose outcome
// is unknown is counted apart. It prints each error ("error MSG") and
// at the end "done OK FAILED INCREMENTS UNKNOWN".
func fleetChild(ctx context.Context, s *pgstore.Store, c childSpec) error {
	ts := sessionstore.TokenSource(ctx, s, c.name, sessionstore.ConfigRefresher(sessionstoretest.ConfigFor(c.oauth)))
	api := oauth2.NewClient(ctx, ts)
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return nil
	}
	stop := stdinClosed()
	var ok, failed, incs, unknown int
	report := func(err error) { fmt.Println("error", strings.ReplaceAll(err.Error(), "\n", " ")) }
	for {
		select {
		case <-stop:
			fmt.Println("done", ok, failed, incs, unknown)
			return nil
		default:
		}
		_, err := ts.Token()
		if err == nil {
			err = sessionstoretest.CallAPI(ctx, api, c.oauth+"/api/me")
		}
		if err != nil {
			failed++
			report(err)
			time.Sleep(20 * time.Millisecond)
		} else {
			ok++
		}
		for attempt := 1; ; attempt++ {
			_, err := s.Update(ctx, c.name+"-counter", increment)
			if err == nil {
				incs++
				break
			}
			report(err)
			if errors.Is(err, sessionstore.ErrOutcomeUnknown) || attempt == 500 {
				unknown++
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// increment adds one to the counter kept in AccessToken.
func increment(cur sessionstore.AuthObject, _ bool) (sessionstore.AuthObject, error) {
	n, _ := strconv.Atoi(cur.AccessToken)
	cur.AccessToken = strconv.Itoa(n + 1)
	return cur, nil
}
