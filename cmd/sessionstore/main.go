// Command sessionstore lists, shows, deletes and imports the sessions of a
// store, and prints an access token for scripts; it prints no other token
// unless asked to (show -reveal). Run "sessionstore -h" for the usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessionstore/sessionstore/internal/cliutil"
)

const usage = `Usage:
    sessionstore ls     STORE [-key FILE] [-json]
    sessionstore show   STORE [-key FILE] NAME [-json] [-reveal]
    sessionstore rm     STORE NAME
    sessionstore import STORE [-key FILE] [-podiojs] [-name NAME] [-force] [-json] FILE...
    sessionstore import STORE [-key FILE] -oauth -name NAME [-force] [-json] FILE|-
    sessionstore token  STORE [-key FILE] -token-url URL -client-id ID
                        [-client-secret-file FILE] NAME [-json]
    sessionstore -version

    STORE is -dir DIR, -etcd URLS -prefix P, or -postgres URL -namespace N
    [-schema S]. On a fleet only import, and token when it refreshes, open
    a Store: the others are not live hosts to rekey.

Commands:
    ls          List every session: expiry, refresh token, health, scope,
                ref, when written, key and status. A record that does not
                open is listed, and ls exits 1.
    show        Show one session, its tokens redacted.
    rm          Delete one session (opening or not) under its lock; needs
                write access to the store, not its key.
    import      Import podio-js session files (tmp/<authType>.json), each
                under the file's name without ".json"; an empty or "{}"
                file is skipped, a bad one reported (exit 1). -oauth: one
                OAuth 2 token response from FILE or stdin ("-").
    token       Print a valid access token of session NAME, refreshed from
                -token-url (and stored) when due.

Options:
    -dir DIR    The store directory. Only import creates it (mode 0700).
    -etcd URLS  The etcd client URLs, comma-separated.
    -etcd-cacert FILE, -etcd-cert FILE, -etcd-key FILE
                TLS: etcd's CA; a client certificate and its key.
    -etcd-user USER
                etcd user; the password is read from $ETCD_PASSWORD.
    -postgres URL
                A libpq URL or key=value string; '' takes the PG* variables.
                Put the password in $PGPASSWORD or ~/.pgpass (ps shows flags).
    -key FILE   The age identity file. Defaults to $SESSIONSTORE_KEY_FILE,
                else $CREDENTIALS_DIRECTORY/sessionstore.key.
    -passphrase-file P
                The key file's passphrase is the first line of P.
    -identity F The age identity (a plugin's stub) that opens a key file
                sealed with rekey -init -seal-to ($SESSIONSTORE_KEY_IDENTITY).
    -json       One JSON object per line; tokens redacted unless -reveal
                (token -json prints its access token).
    -reveal     With show: print the tokens (a warning goes to stderr).
    -podiojs    With import: the files are podio-js sessions (the default).
    -oauth      With import: FILE (- for stdin) is an OAuth 2 token response.
    -name NAME  With import of one file: store it under NAME.
    -force      With import: replace a session already stored under NAME.
    -token-url URL, -client-id ID
                With token: the provider's token endpoint and client id. The
                secret is the first line of -client-secret-file FILE (mode
                0600), else $SESSIONSTORE_CLIENT_SECRET.
    -version    Print the version.

Exit status: 0 on success, 1 on an error, 2 for a usage error, 4 when token
finds the session needs a new login. No name or path reaches a terminal raw.

Examples:
    $ sessionstore ls -dir /var/lib/myapp/sessions -key /etc/myapp/sessionstore.key
    $ sessionstore show -dir /var/lib/myapp/sessions server -json -reveal | jq -r .access_token
    $ sessionstore import -dir /var/lib/myapp/sessions tmp/*.json
    $ get-token | sessionstore import -oauth -name app:12345 -force -dir /var/lib/myapp/sessions -
    $ SESSIONSTORE_CLIENT_SECRET=... sessionstore token -dir /var/lib/myapp/sessions \
          -token-url https://auth.example.com/oauth/token -client-id myapp server
    $ PGHOST=db1 PGUSER=myapp sessionstore rm -postgres '' -namespace prod server
`

// now is the clock: a variable so that tests can fix it.
var now = time.Now

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// options are the parsed command line.
type options struct {
	cliutil.Command
	cmd, dir, keyFile, passFile, identity  string
	fleet                                  cliutil.FleetFlags
	name, tokenURL, clientID, secretFile   string // import -name; token
	jsonOut, reveal, force, podiojs, oauth bool
	args                                   []string
	stdin                                  io.Reader
	progressOK                             bool // stderr is a terminal
}

// run is sessionstore; it returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o := options{Command: cliutil.Command{Name: "sessionstore", Usage: usage, Stdout: stdout, Stderr: stderr},
		stdin: stdin, progressOK: cliutil.IsTerminal(stderr)}
	usageErr := o.UsageError
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-version", "--version":
		fmt.Fprintln(stdout, cliutil.Version())
		return 0
	case "ls", "show", "rm", "import", "token":
	default:
		if strings.HasPrefix(args[0], "-") {
			return usageErr("give a command first: ls, show, rm, import or token")
		}
		return usageErr("unknown command %q: want ls, show, rm, import or token", args[0])
	}
	o.cmd = args[0]
	fs := flag.NewFlagSet("sessionstore "+o.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.fleet.Register(fs)
	for name, p := range map[string]*string{"dir": &o.dir, "key": &o.keyFile, "passphrase-file": &o.passFile, "identity": &o.identity,
		"name": &o.name, "token-url": &o.tokenURL, "client-id": &o.clientID, "client-secret-file": &o.secretFile} {
		fs.StringVar(p, name, "", "")
	}
	for name, p := range map[string]*bool{"json": &o.jsonOut, "reveal": &o.reveal, "podiojs": &o.podiojs, "oauth": &o.oauth, "force": &o.force} {
		fs.BoolVar(p, name, false, "")
	}
	var err error
	o.args, err = parseInterspersed(fs, args[1:])
	if code, ok := o.Parsed(err); !ok {
		return code
	}
	set := cliutil.Visited(fs)
	only := func(flagName string, cmds ...string) bool {
		return slices.Contains(cmds, o.cmd) || !set[flagName]
	}
	f := o.fleet
	// -postgres '' is libpq's environment variables.
	pg := set["postgres"] || set["namespace"] || set["schema"]
	switch {
	case o.dir != "" && (set["etcd"] || set["prefix"]):
		return usageErr("give -dir DIR or -etcd URLS -prefix P, not both")
	case pg && (o.dir != "" || set["etcd"] || set["prefix"]):
		return usageErr("give -postgres URL -namespace N alone, without -dir or -etcd")
	case o.dir == "" && !set["etcd"] && !set["prefix"] && !pg:
		return usageErr("no store: give -dir DIR, -etcd URLS -prefix P or -postgres URL -namespace N")
	case pg && (!set["postgres"] || f.Namespace == ""):
		return usageErr("-postgres URL and -namespace N go together")
	case pg && f.Schema == "":
		return usageErr("-schema names no schema")
	case o.dir == "" && !pg && (f.Etcd == "" || f.Prefix == ""):
		return usageErr("-etcd URLS and -prefix P go together")
	case (o.dir != "" || pg) && (set["etcd-cacert"] || set["etcd-cert"] || set["etcd-key"] || set["etcd-user"]):
		return usageErr("-etcd-cacert, -etcd-cert, -etcd-key and -etcd-user go with -etcd")
	case (f.Cert == "") != (f.Key == ""):
		return usageErr("-etcd-cert and -etcd-key go together")
	case f.User != "" && os.Getenv(cliutil.EtcdPasswordEnv) == "":
		return usageErr("-etcd-user needs the password in $%s", cliutil.EtcdPasswordEnv)
	case !only("json", "ls", "show", "import", "token"):
		return usageErr("-json goes with ls, show, import or token")
	case !only("reveal", "show"):
		return usageErr("-reveal goes with show")
	case !only("podiojs", "import"), !only("oauth", "import"), !only("name", "import"), !only("force", "import"):
		return usageErr("-podiojs, -oauth, -name and -force go with import")
	case !only("token-url", "token"), !only("client-id", "token"), !only("client-secret-file", "token"):
		return usageErr("-token-url, -client-id and -client-secret-file go with token")
	case o.cmd == "token" && (o.tokenURL == "" || o.clientID == ""):
		return usageErr("token needs the provider: -token-url URL -client-id ID")
	case o.podiojs && o.oauth:
		return usageErr("give -podiojs or -oauth, not both")
	case o.cmd == "ls" && len(o.args) > 0:
		return usageErr("unexpected argument %q: ls takes no name", o.args[0])
	case (o.cmd == "show" || o.cmd == "rm" || o.cmd == "token") && len(o.args) != 1:
		if len(o.args) == 0 {
			return usageErr("%s needs the session's NAME", o.cmd)
		}
		return usageErr("unexpected argument %q: %s takes one NAME", o.args[1], o.cmd)
	case o.cmd == "import" && len(o.args) == 0:
		return usageErr("import needs at least one FILE")
	case set["name"] && len(o.args) != 1:
		return usageErr("-name goes with a single FILE")
	case o.oauth && o.name == "":
		return usageErr("-oauth needs the session's name: -name NAME")
	case o.cmd == "import" && !o.oauth && slices.Contains(o.args, "-"):
		return usageErr("\"-\" (stdin) goes with -oauth; a file named - is ./-")
	}
	if o.cmd == "rm" { // deleting needs write access to the store, not its key
		o.keyFile, o.passFile, o.identity = "", "", ""
	} else if !o.KeyFile(&o.keyFile) {
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	b, err := openBackend(ctx, &o, pg)
	if err != nil {
		return o.Fail(err)
	}
	defer b.close()
	switch o.cmd {
	case "ls":
		return runList(ctx, b, &o)
	case "show":
		return runShow(ctx, b, &o)
	case "rm":
		if err := b.found(o.args[0], b.Remove(ctx, o.args[0])); err != nil {
			return o.Fail(err)
		}
		fmt.Fprintf(stdout, "deleted session %s\n", strconv.Quote(o.args[0]))
		return 0
	case "token":
		return runToken(ctx, b, &o)
	default:
		return runImport(ctx, b, &o)
	}
}

// parseInterspersed parses flags anywhere among the arguments ("show NAME
// -json" as well as "show -json NAME") and returns the others, in order.
// After "--" everything is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if len(left) == 0 {
			return rest, nil
		}
		if n := len(args) - len(left); n > 0 && args[n-1] == "--" {
			return append(rest, left...), nil
		}
		rest = append(rest, left[0])
		args = left[1:]
	}
}
