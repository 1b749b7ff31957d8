package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/cliutil"
	"github.com/sessionstore/sessionstore/internal/pgtest"
	"github.com/sessionstore/sessionstore/internal/testplugin"
)

// openFleetStore opens the store that a script's DIR argument names:
// "etcd:" is $PREFIX on $ETCD, "pg:" is $NS on $PGURL; ok is false for a
// directory.
func openFleetStore(ctx context.Context, ts *testscript.TestScript, key, dir string) (s sessionstore.Store, closeAll func(), ok bool) {
	switch dir {
	case "etcd:":
		s, c := openEtcdStore(ctx, ts, key)
		return s, func() { s.Close(); c.Close() }, true
	case "pg:":
		s, closeAll := openPgStore(ctx, ts, key)
		return s, closeAll, true
	}
	return nil, nil, false
}

// testNowEnv fixes the clock of the sessionstore command in tests (an
// RFC 3339 time). Only this test binary reads it.
const testNowEnv = "SESSIONSTORE_TEST_NOW"

// testEtcdTimeoutEnv shortens the wait for etcd to answer (a duration),
// for the scripts' unreachable etcd. Only this test binary reads it.
const testEtcdTimeoutEnv = "SESSIONSTORE_TEST_ETCD_TIMEOUT"

func TestMain(m *testing.M) {
	if v := os.Getenv(testNowEnv); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			panic(testNowEnv + ": " + err.Error())
		}
		now = func() time.Time { return t }
	}
	if v := os.Getenv(testEtcdTimeoutEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			panic(testEtcdTimeoutEnv + ": " + err.Error())
		}
		cliutil.DialTimeout = d
	}
	crypto.KeyFileWorkFactor = 10 // fast passphrase tests; the default is age's 18
	testscript.Main(cleansUp{m}, map[string]func(){"sessionstore": main})
}

// cleansUp runs the tests, then stops the shared PostgreSQL and removes
// the test plugin they built.
type cleansUp struct{ *testing.M }

func (m cleansUp) Run() int {
	defer pgtest.StopShared()
	defer testplugin.Cleanup()
	return m.M.Run()
}

// TestScripts runs the command-line tests in testdata/*.txt.
func TestScripts(t *testing.T) {
	t.Cleanup(stopEtcd)
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"keygen":      cmdKeygen,
			"session":     cmdSession,
			"joinkeys":    cmdJoinKeys,
			"etcd":        cmdEtcd,
			"pg":          cmdPostgres,
			"pgsql":       cmdPgSQL,
			"etcdcp":      cmdEtcdCopy,
			"etcdput":     cmdEtcdPut,
			"etcdrev":     cmdEtcdRev,
			"etcdwritten": cmdEtcdWritten,
			"hostile":     cmdHostile,
			"provider":    cmdProvider,
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("SESSIONSTORE_KEY_FILE", "")
			env.Setenv("CREDENTIALS_DIRECTORY", "")
			env.Setenv(testNowEnv, "")
			env.Setenv(testEtcdTimeoutEnv, "")
			env.Setenv(clientSecretEnv, "")
			return nil
		},
	})
}

// keygen FILE [PASSPHRASE]: create a key file with a new identity, as
// rekey -init does, protected with PASSPHRASE if given.
func cmdKeygen(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 && len(args) != 2 {
		ts.Fatalf("usage: keygen FILE [PASSPHRASE]")
	}
	k, err := crypto.GenerateKeyring(false)
	ts.Check(err)
	pass := ""
	if len(args) == 2 {
		pass = args[1]
	}
	ts.Check(crypto.CreateKeyFileWithPassphrase(ts.MkAbs(args[0]), k, pass))
}

// joinkeys OUT KEY...: create a key file holding the identities of the
// given key files, in order: the first one's primary is OUT's primary.
func cmdJoinKeys(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: joinkeys OUT KEY...")
	}
	var ids []age.Identity
	for _, f := range args[1:] {
		k, err := crypto.LoadKeyring(ts.MkAbs(f))
		ts.Check(err)
		ids = append(ids, k.Identities()...)
	}
	k, err := crypto.NewKeyring(ids...)
	ts.Check(err)
	ts.Check(crypto.CreateKeyFile(ts.MkAbs(args[0]), k))
}

// session KEY DIR NAME (DIR "etcd:" is $ETCD, $PREFIX; "pg:" is $PGURL, $NS) [expires=DURATION] [refresh] [scope=S] [ref=TYPE:ID] [extra=K]:
// store a session whose tokens are secret-access-NAME, secret-refresh-NAME
// (with refresh) and, under extra key K, secret-extra-NAME. The expiry is
// relative to $SESSIONSTORE_TEST_NOW (else now). A passphrase-protected
// KEY is opened with $TEST_PASSPHRASE.
func cmdSession(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: session KEY DIR NAME [expires=DURATION] [refresh] [scope=S] [ref=TYPE:ID] [extra=K]")
	}
	name := args[2]
	clock := time.Now()
	if v := ts.Getenv(testNowEnv); v != "" {
		var err error
		clock, err = time.Parse(time.RFC3339, v)
		ts.Check(err)
	}
	a := sessionstore.AuthObject{AccessToken: "secret-access-" + name, TokenType: "bearer"}
	for _, opt := range args[3:] {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "expires":
			d, err := time.ParseDuration(v)
			ts.Check(err)
			a.Expiry = clock.Add(d)
		case "refresh":
			a.RefreshToken = "secret-refresh-" + name
		case "scope":
			a.Scope = v
		case "ref":
			typ, id, _ := strings.Cut(v, ":")
			n, err := strconv.ParseInt(id, 10, 64)
			ts.Check(err)
			a.Ref = sessionstore.Ref{Type: typ, ID: n}
		case "extra":
			a.Extra = map[string]any{v: "secret-extra-" + name}
		default:
			ts.Fatalf("session: unknown option %q", opt)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s, closeAll, ok := openFleetStore(ctx, ts, args[0], args[1]); ok {
		defer closeAll()
		ts.Check(s.Set(ctx, name, a))
		return
	}
	opts := []filestore.Option{filestore.WithKeyFile(ts.MkAbs(args[0])), filestore.WithoutWatcher()}
	if p := ts.Getenv("TEST_PASSPHRASE"); p != "" {
		opts = append(opts, filestore.WithPassphrase(func() (string, error) { return p, nil }))
	}
	s, err := filestore.Open(ts.MkAbs(args[1]), opts...)
	ts.Check(err)
	defer s.Close()
	ts.Check(s.Set(ctx, name, a))
}

// TestExitCodes checks what a script cannot: usage errors exit 2, -h 0.
func TestExitCodes(t *testing.T) {
	t.Setenv("SESSIONSTORE_KEY_FILE", "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout or stderr
	}{
		{nil, 2, "Usage:"},
		{[]string{"-h"}, 0, "Examples:"},
		{[]string{"ls", "-h"}, 0, "Usage:"},
		{[]string{"-version"}, 0, ""},
		{[]string{"frob"}, 2, `unknown command "frob"`},
		{[]string{"-dir", dir, "ls"}, 2, "give a command first"},
		{[]string{"ls", "-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"ls"}, 2, "no store: give -dir DIR, -etcd URLS -prefix P or -postgres URL -namespace N"},
		{[]string{"ls", "-etcd", "http://127.0.0.1:2379"}, 2, "-etcd URLS and -prefix P go together"},
		{[]string{"ls", "-prefix", "/p"}, 2, "-etcd URLS and -prefix P go together"},
		{[]string{"ls", "-dir", dir, "-etcd", "http://127.0.0.1:2379", "-prefix", "/p"}, 2, "not both"},
		{[]string{"ls", "-dir", dir, "-etcd-user", "u"}, 2, "go with -etcd"},
		{[]string{"ls", "-etcd", "http://127.0.0.1:2379", "-prefix", "/p", "-etcd-cert", "c.pem"}, 2, "-etcd-cert and -etcd-key go together"},
		{[]string{"ls", "-etcd", "http://127.0.0.1:2379", "-prefix", "/p", "-etcd-user", "u"}, 2, "needs the password in $ETCD_PASSWORD"},
		{[]string{"ls", "-dir", dir, "-reveal"}, 2, "-reveal goes with show"},
		{[]string{"rm", "-dir", dir, "-json", "x"}, 2, "-json goes with ls, show, import or token"},
		{[]string{"ls", "-dir", dir, "-force"}, 2, "go with import"},
		{[]string{"ls", "-dir", dir, "x"}, 2, `unexpected argument "x"`},
		{[]string{"show", "-dir", dir}, 2, "show needs the session's NAME"},
		{[]string{"rm", "-dir", dir, "a", "b"}, 2, `unexpected argument "b"`},
		{[]string{"import", "-dir", dir}, 2, "import needs at least one FILE"},
		{[]string{"import", "-dir", dir, "-name", "n", "a.json", "b.json"}, 2, "-name goes with a single FILE"},
		{[]string{"ls", "-dir", dir}, 2, "no -key given"},
		{[]string{"rm", "-dir", dir, "x"}, 1, `no session "x" in`}, // rm needs no key
		{[]string{"import", "-dir", dir, "-oauth", "t.json"}, 2, "-oauth needs the session's name: -name NAME"},
		{[]string{"import", "-dir", dir, "-oauth", "-podiojs", "-name", "n", "t.json"}, 2, "give -podiojs or -oauth, not both"},
		{[]string{"import", "-dir", dir, "-"}, 2, `"-" (stdin) goes with -oauth`},
		{[]string{"show", "-dir", dir, "-oauth", "x"}, 2, "go with import"},
		{[]string{"ls", "-dir", dir + "/no\x1b[2Jwhere", "-key", "k"}, 1, "store directory " + strconv.Quote(dir+"/no\x1b[2Jwhere") + ": "},
		{[]string{"ls", "-bogus\x1b[2J"}, 2, `flag provided but not defined: -bogus\x1b[2J`},
		{[]string{"ls", "-dir", dir, "-key", dir + "/missing.key"}, 1, "missing.key"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.want) {
			t.Errorf("sessionstore %q: exit %d, want %d with %q\nstdout: %s\nstderr: %s", tc.args, code, tc.code, tc.want, &stdout, &stderr)
		}
	}
}

func TestSpan(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{45 * time.Second, "45s"},
		{12*time.Minute + 59*time.Second, "12m"},
		{7*time.Hour + 12*time.Minute + 30*time.Second, "7h12m"},
		{5 * time.Hour, "5h"},
		{3 * 24 * time.Hour, "3d"},
		{3*24*time.Hour + 4*time.Hour + 5*time.Minute, "3d4h"},
		{12*24*time.Hour + 5*time.Hour, "12d"},
	} {
		if got := span(tc.d); got != tc.want {
			t.Errorf("span(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, want := expiryText(t0.Add(-72*time.Hour), t0), "2025-12-29T00:00:00Z (expired 3d ago)"; got != want {
		t.Errorf("expiryText = %q, want %q", got, want)
	}
	if got, want := expiryText(time.Time{}, t0), "never"; got != want {
		t.Errorf("expiryText(zero) = %q, want %q", got, want)
	}
}

// TestProgress checks the progress line that a terminal sees during a
// long import: drawn in place, erased before any other output and at the
// end.
func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, total: 3, on: true}
	p.show(1)
	p.clear()
	b.WriteString("line\n")
	p.show(2)
	p.show(3) // the last one is not drawn: the summary follows
	p.clear()
	want := "\rsessionstore: import 1/3\r                        \rline\n\rsessionstore: import 2/3\r                        \r"
	if b.String() != want {
		t.Errorf("progress wrote %q, want %q", b.String(), want)
	}
	b.Reset()
	off := &progress{w: &b, total: 100}
	off.show(1)
	off.clear()
	if b.Len() != 0 {
		t.Errorf("progress off wrote %q", b.String())
	}
}

func TestStatusOf(t *testing.T) {
	for err, want := range map[error]string{
		nil: "ok",
		fmt.Errorf("f: %w", sessionstore.ErrWrongKey):            "wrong key",
		fmt.Errorf("f: %w", sessionstore.ErrTampered):            "tampered",
		fmt.Errorf("f: %w", sessionstore.ErrRollback):            "rolled back",
		fmt.Errorf("f: %w", sessionstore.ErrInsecurePermissions): "unreadable",
	} {
		if got := statusOf(err); got != want {
			t.Errorf("statusOf(%v) = %q, want %q", err, got, want)
		}
	}
}

// TestImportProgress imports many files with stderr taken for a terminal:
// the progress line is drawn, and erased before the summary.
func TestImportProgress(t *testing.T) {
	dir := t.TempDir()
	k, err := crypto.GenerateKeyring(false)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "store.key")
	if err := crypto.CreateKeyFile(keyFile, k); err != nil {
		t.Fatal(err)
	}
	var files []string
	for i := range progressMin {
		f := filepath.Join(dir, fmt.Sprintf("s%d.json", i))
		if err := os.WriteFile(f, []byte(`{"accessToken":"secret-progress","expiresIn":60}`), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	var stdout, stderr bytes.Buffer
	cmd := cliutil.Command{Name: "sessionstore", Stdout: &stdout, Stderr: &stderr}
	o := &options{Command: cmd, cmd: "import", dir: filepath.Join(dir, "s"), keyFile: keyFile, args: files, progressOK: true}
	b, err := openBackend(context.Background(), o, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if code := runImport(context.Background(), b, o); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, &stderr)
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("\rsessionstore: import 1/%d", progressMin)) ||
		!strings.HasSuffix(stderr.String(), "\r") {
		t.Errorf("stderr %q: want a progress line, erased at the end", stderr.String())
	}
	if !strings.HasSuffix(stdout.String(), fmt.Sprintf("%d of %d files imported, 0 skipped, 0 failed\n", progressMin, progressMin)) {
		t.Errorf("stdout %q: want the summary", stdout.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), "secret-") {
		t.Error("a token was printed")
	}

	// Fewer files, or not a terminal: no progress line.
	stdout.Reset()
	stderr.Reset()
	o = &options{Command: cmd, cmd: "import", args: files[:progressMin-1], progressOK: true, force: true}
	if code := runImport(context.Background(), b, o); code != 0 || stderr.Len() != 0 {
		t.Errorf("import of %d files: exit %d, stderr %q", progressMin-1, code, &stderr)
	}
	o = &options{Command: cmd, cmd: "import", args: files, force: true}
	if code := runImport(context.Background(), b, o); code != 0 || stderr.Len() != 0 {
		t.Errorf("import to a non-terminal: exit %d, stderr %q", code, &stderr)
	}
}

// hostile VAR NAME [CONTENT]: set VAR to the path NAME, written with Go
// string escapes ('tmp/\x1b[2J.json'), and with CONTENT create that file
// (and its directory): a hostile file name a script cannot spell.
func cmdHostile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 && len(args) != 3 {
		ts.Fatalf("usage: hostile VAR NAME [CONTENT]")
	}
	name, err := strconv.Unquote(`"` + args[1] + `"`)
	ts.Check(err)
	if len(args) == 3 {
		p := ts.MkAbs(name)
		ts.Check(os.MkdirAll(filepath.Dir(p), 0o755))
		ts.Check(os.WriteFile(p, []byte(args[2]), 0o600))
	}
	ts.Setenv(args[0], name)
}
