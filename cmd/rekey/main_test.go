package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age/plugin"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/etcdtest"
	"github.com/sessionstore/sessionstore/internal/pgtest"
	"github.com/sessionstore/sessionstore/internal/testplugin"
	"github.com/sessionstore/sessionstore/pgstore"
)

func TestMain(m *testing.M) {
	crypto.KeyFileWorkFactor = 10 // fast passphrase tests; the default is age's 18
	testscript.Main(stopsEtcd{m}, map[string]func(){"rekey": main})
}

// stopsEtcd runs the tests, then stops the scripts' embedded etcd and
// PostgreSQL.
type stopsEtcd struct{ *testing.M }

func (m stopsEtcd) Run() int {
	defer etcdtest.Stop()
	// The test plugin, on $PATH for the scripts and their commands.
	dir, err := testplugin.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testplugin.Cleanup()
	os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	defer pgtest.StopShared()
	return m.M.Run()
}

// runs numbers the runs of TestScripts (go test -count=N), whose scripts
// share one PostgreSQL: each run's namespaces are its own.
var runs atomic.Int64

// TestScripts runs the command-line tests in testdata/*.txt.
func TestScripts(t *testing.T) {
	endpoint := etcdtest.Endpoint(t) // one embedded etcd for every script
	pg := pgtest.Shared(t)           // one PostgreSQL for every script
	run := runs.Add(1)
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"seed":    cmdSeed,
			"get":     cmdGet,
			"foreign": cmdForeign,
			"eseed":   cmdEtcdSeed,
			"host":    cmdHost,
			"crash":   cmdCrash,
			"plugkey": cmdPlugKey,
			"plugged": cmdPlugged,
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("SESSIONSTORE_KEY_FILE", "")
			env.Setenv("CREDENTIALS_DIRECTORY", "")
			env.Setenv(crypto.KeyIdentityEnv, "")
			env.Setenv(testplugin.LogEnv, filepath.Join(env.WorkDir, "plugin.log"))
			env.Setenv(testplugin.RefuseEnv, "")
			env.Setenv("ETCD", endpoint)
			env.Setenv("PREFIX", etcdtest.Prefix(t)+"/"+filepath.Base(env.WorkDir))
			env.Setenv("PGURL", pg.URL())
			env.Setenv("PGPORT_TEST", strconv.Itoa(pg.Port()))
			env.Setenv("NS", fmt.Sprintf("%s-%d", filepath.Base(env.WorkDir), run))
			return nil
		},
	})
}

func ctx5s() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// seed KEY DIR N: store N sessions rec-0 … rec-(N-1) in DIR.
func cmdSeed(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: seed KEY DIR N")
	}
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	s, err := filestore.Open(ts.MkAbs(args[1]), filestore.WithKeyFile(ts.MkAbs(args[0])), filestore.WithoutWatcher(),
		filestore.WithKeyIdentity(ts.Getenv(crypto.KeyIdentityEnv)))
	ts.Check(err)
	defer s.Close()
	ctx, cancel := ctx5s()
	defer cancel()
	for i := range n {
		ts.Check(s.Set(ctx, "rec-"+strconv.Itoa(i), sessionstore.AuthObject{AccessToken: "token-" + strconv.Itoa(i)}))
	}
}

// get KEY DIR NAME: print the session's access token.
func cmdGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: get KEY DIR NAME")
	}
	s, err := filestore.Open(ts.MkAbs(args[1]), filestore.WithKeyFile(ts.MkAbs(args[0])), filestore.WithoutWatcher(),
		filestore.WithKeyIdentity(ts.Getenv(crypto.KeyIdentityEnv)))
	ts.Check(err)
	defer s.Close()
	ctx, cancel := ctx5s()
	defer cancel()
	a, err := s.Get(ctx, args[2])
	if neg {
		if err == nil {
			ts.Fatalf("get %s succeeded", args[2])
		}
		ts.Logf("get: %v", err)
		return
	}
	ts.Check(err)
	ts.Stdout().Write([]byte(a.AccessToken + "\n"))
}

// foreign DIR NAME: write a record sealed to a key nobody has.
func cmdForeign(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: foreign DIR NAME")
	}
	k, err := crypto.GenerateKeyring(false)
	ts.Check(err)
	ct, err := envelope.Seal(k, &envelope.Record{AuthType: args[1], Seq: 1, Written: time.Now(), Auth: []byte(`{"access_token":"x"}`)})
	ts.Check(err)
	ts.Check(os.WriteFile(filepath.Join(ts.MkAbs(args[0]), args[1]+".age"), ct, 0o600))
}

// crash KEY DIR KIND: rotate DIR's records to a new primary of KIND
// (x25519 or pq), and stop the rotation, as a kill would, right after it
// wrote KEY with the new primary first.
func cmdCrash(ts *testscript.TestScript, neg bool, args []string) {
	kinds := map[string]crypto.Kind{"x25519": crypto.X25519, "pq": crypto.PostQuantum}
	if len(args) != 3 || kinds[args[2]] == crypto.SameKind {
		ts.Fatalf("usage: crash KEY DIR x25519|pq")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := filestore.Rotate(ctx, ts.MkAbs(args[0]), []string{ts.MkAbs(args[1])}, filestore.RotateOptions{
		Kind: kinds[args[2]],
		Progress: func(ev filestore.RotateEvent) {
			if ev.Step == "key-written" {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		ts.Fatalf("crash: the rotation did not reach the key file: %v", err)
	}
}

// plugkey FILE VAR: make a key for the test plugin (age-plugin-sstest, on
// $PATH): its identity stub in FILE, its recipient in $VAR. $MISSING is
// then the recipient of a plugin that is not installed.
func cmdPlugKey(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: plugkey FILE VAR")
	}
	r, err := testplugin.NewKey(ts.MkAbs(args[0]))
	ts.Check(err)
	ts.Setenv(args[1], r)
	ts.Setenv("MISSING", plugin.EncodeRecipient("sstestgone", []byte("none")))
}

// plugged UNWRAP WRAP: the test plugin ran UNWRAP times to open a file
// and WRAP times to seal one, in the processes that rekey ran.
func cmdPlugged(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: plugged UNWRAP WRAP")
	}
	unwrap, wrap, err := testplugin.Count(ts.Getenv(testplugin.LogEnv))
	ts.Check(err)
	if got, want := fmt.Sprint(unwrap, " ", wrap), args[0]+" "+args[1]; got != want {
		ts.Fatalf("plugin runs (unwrap wrap): %s, want %s", got, want)
	}
}

// eseed KEY N: store N sessions rec-0 … rec-(N-1) under $PREFIX in $ETCD.
// fleetArgs takes the leading -pg of args: the store is $NS on $PGURL,
// else $PREFIX on $ETCD.
func fleetArgs(args []string) (pg bool, rest []string) {
	if len(args) > 0 && args[0] == "-pg" {
		return true, args[1:]
	}
	return false, args
}

// openFleet opens a Store of the script's fleet with ring's keys, fixed,
// or else with keyFile's, on a client or pool of its own (another host);
// stop closes both.
func openFleet(ts *testscript.TestScript, pg bool, keyFile string, ring *crypto.Keyring) (s sessionstore.Store, stop func()) {
	ctx, cancel := ctx5s()
	defer cancel()
	var (
		closeConn func()
		err       error
	)
	if pg {
		pool, perr := pgxpool.New(ctx, ts.Getenv("PGURL"))
		ts.Check(perr)
		opt := pgstore.WithKeyFile(keyFile)
		if ring != nil {
			opt = pgstore.WithKeyring(ring)
		}
		s, err = pgstore.Open(ctx, pool, ts.Getenv("NS"), opt)
		closeConn = pool.Close
	} else {
		c, cerr := etcdtest.Dial(ts.Getenv("ETCD"))
		ts.Check(cerr)
		opt := etcdstore.WithKeyFile(keyFile)
		if ring != nil {
			opt = etcdstore.WithKeyring(ring)
		}
		s, err = etcdstore.Open(ctx, c, ts.Getenv("PREFIX"), opt)
		closeConn = func() { c.Close() }
	}
	if err != nil {
		closeConn()
		ts.Fatalf("open: %v", err)
	}
	return s, func() { s.Close(); closeConn() }
}

// eseed [-pg] KEY N: store N sessions rec-0 … rec-(N-1) under $PREFIX in
// $ETCD (with -pg: in namespace $NS on $PGURL).
func cmdEtcdSeed(ts *testscript.TestScript, neg bool, args []string) {
	pg, args := fleetArgs(args)
	if len(args) != 2 {
		ts.Fatalf("usage: eseed [-pg] KEY N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	s, stop := openFleet(ts, pg, ts.MkAbs(args[0]), nil)
	defer stop()
	ctx, cancel := ctx5s()
	defer cancel()
	for i := range n {
		ts.Check(s.Set(ctx, "rec-"+strconv.Itoa(i), sessionstore.AuthObject{AccessToken: "token-" + strconv.Itoa(i)}))
	}
}

// host [-pg] KEY: open a Store under $PREFIX (with -pg: of $NS) with
// KEY's keys, fixed, on an etcd client (a pool) of its own: another host,
// until "host -stop" or the script's end. Its heartbeat lists those keys.
func cmdHost(ts *testscript.TestScript, neg bool, args []string) {
	pg, args := fleetArgs(args)
	if len(args) != 1 {
		ts.Fatalf("usage: host [-pg] KEY | host -stop")
	}
	if args[0] == "-stop" {
		if stop, ok := hosts.LoadAndDelete(ts); ok {
			stop.(func())()
		}
		return
	}
	ring, err := crypto.LoadKeyring(ts.MkAbs(args[0]))
	ts.Check(err)
	_, closeAll := openFleet(ts, pg, "", ring)
	var once sync.Once
	stop := func() { once.Do(closeAll) }
	ts.Defer(stop)
	hosts.Store(ts, stop)
}

// hosts holds each script's open host's stop function.
var hosts sync.Map
