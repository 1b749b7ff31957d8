// Command rekey creates and rotates sessionstore keys, and checks which key
// each record is sealed to: on one host (-dir), or staged across the hosts
// of a fleet (-etcd, -postgres). Run "rekey -h" for the usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"time"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/cliutil"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

const usage = `Usage:
    rekey -init -key FILE [-pq] [-passphrase-file P | -seal-to RECIPIENT...]
    rekey -key FILE -dir DIR [-dir DIR...] [-pq] [-keep-old] [-dry-run] [-j N]
    rekey -check -key FILE -dir DIR [-dir DIR...] [-json] [-j N]

  A fleet, in three steps (distribute FILE to every host after each); FLEET
  is -etcd URLS -prefix P or -postgres URL -namespace N [-schema S]:
    rekey -stage -key FILE [-pq]
    rekey -key FILE FLEET [-dry-run] [-j N]
    rekey -retire -key FILE FLEET [-dry-run] [-j N]
    rekey -check -key FILE FLEET [-json] [-j N]

Options:
    -init       Create FILE (mode 0600, never overwritten); -key - prints it.
    -key FILE   The age identity file, primary first. Defaults to
                $SESSIONSTORE_KEY_FILE, else $CREDENTIALS_DIRECTORY/sessionstore.key.
    -dir DIR    A store directory; repeatable.
    -check      Report each record (and a fleet's live hosts); exit 0 if all
                are on the primary key. -json: one object per line, no token.
    -stage      Fleet step 1: add a decrypt-only identity to FILE.
    -etcd URLS  Fleet step 2 (comma-separated endpoints): promote the staged
                identity, reseal; refused while a live host lacks it.
    -retire     Fleet step 3: reseal what is under old keys, drop them from
                FILE; refused while a live host's primary is not FILE's.
    -postgres URL
                Fleet step 2, as -etcd: a libpq URL or key=value string
                ('' takes PGHOST, PGUSER, PGPASSWORD...).
    -etcd-cacert F, -etcd-cert F, -etcd-key F
                TLS: etcd's CA; a client certificate and its key.
    -etcd-user U
                etcd user; the password is read from $ETCD_PASSWORD.
    -pq         The new identity is post-quantum (-pq=false: X25519); by
                default, of the primary's kind (rekey says when it changes).
    -keep-old   Keep the old identities, decrypt-only, after rotating.
    -dry-run    Change nothing; say what would change (exit 1 if it would fail).
    -j N        Records processed in parallel (default 1).
    -passphrase-file P
                The key file is passphrase-protected ("age -p"); the
                passphrase is the first line of P.
    -seal-to RECIPIENT
                With -init: seal FILE to an age recipient (a plugin's), listed
                in FILE.sealed-to; every rewrite reseals. Repeatable.
    -identity F The age identity (a plugin's stub) that opens a sealed FILE.
                Defaults to $SESSIONSTORE_KEY_IDENTITY.
    -version    Print the version.

Running processes keep working throughout; if rekey is interrupted, run it
again. On a fleet, rekey checks the live hosts' heartbeats before each step.

Examples:
    $ rekey -init -key /etc/myapp/sessionstore.key
    $ rekey -key /etc/myapp/sessionstore.key -dir /var/lib/myapp/sessions

    $ rekey -stage -key sessionstore.key          # then distribute it
    $ export ETCD_PASSWORD=...                    # for -etcd-user
    $ E='-etcd https://etcd-1:2379 -etcd-cacert ca.pem -etcd-user prod -prefix /sessionstore/prod'
    $ rekey -key sessionstore.key $E              # then distribute it
    $ rekey -check -key sessionstore.key $E       # the hosts' primaries
    $ rekey -retire -key sessionstore.key $E
    $ PGPASSWORD=... rekey -check -key sessionstore.key -postgres postgres://app@db-1/app -namespace prod
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is rekey; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	c := cliutil.Command{Name: "rekey", Usage: usage, Stdout: stdout, Stderr: stderr, Raw: true}
	fs := flag.NewFlagSet("rekey", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		initFlag, check, jsonOut, pq, keepOld, dryRun, version, stage, retire bool
		keyFile, passFile, identity                                           string
		dirs, sealTo                                                          []string
		workers                                                               int
		ff                                                                    cliutil.FleetFlags
	)
	for name, p := range map[string]*bool{"init": &initFlag, "check": &check, "json": &jsonOut, "pq": &pq, "keep-old": &keepOld,
		"dry-run": &dryRun, "version": &version, "stage": &stage, "retire": &retire} {
		fs.BoolVar(p, name, false, "")
	}
	for name, p := range map[string]*string{"key": &keyFile, "passphrase-file": &passFile, "identity": &identity} {
		fs.StringVar(p, name, "", "")
	}
	for name, p := range map[string]*[]string{"dir": &dirs, "seal-to": &sealTo} {
		fs.Func(name, "", func(v string) error { *p = append(*p, v); return nil })
	}
	fs.IntVar(&workers, "j", 1, "")
	ff.Register(fs)
	if code, ok := c.Parsed(fs.Parse(args)); !ok {
		return code
	}
	set := cliutil.Visited(fs)
	kind := crypto.SameKind
	if set["pq"] {
		kind = crypto.X25519
		if pq {
			kind = crypto.PostQuantum
		}
	}
	if version {
		fmt.Fprintln(stdout, cliutil.Version())
		return 0
	}
	etcd := ff.Etcd != ""
	pg := set["postgres"] // -postgres '' is libpq's environment variables
	fleetFlag := "-etcd"
	if pg {
		fleetFlag = "-postgres"
	}
	keyOnly := "-init" // the modes that only write the key file
	if stage {
		keyOnly = "-stage"
	}
	modes := 0
	for _, m := range []bool{initFlag, check, stage, retire} {
		if m {
			modes++
		}
	}
	usageErr := c.UsageError
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q", fs.Arg(0))
	case modes > 1:
		return usageErr("-init, -stage, -retire and -check do not go together")
	case (initFlag || stage) && len(dirs) > 0:
		return usageErr("%s takes no -dir", keyOnly)
	case (initFlag || stage) && (etcd || pg):
		return usageErr("%s takes no %s: it only writes the key file", keyOnly, fleetFlag)
	case etcd && pg:
		return usageErr("-etcd and -postgres do not go together")
	case (etcd || pg) && len(dirs) > 0:
		return usageErr("-dir and %s do not go together", fleetFlag)
	case !pg && (set["namespace"] || set["schema"]):
		return usageErr("-namespace and -schema go with -postgres")
	case pg && ff.Namespace == "":
		return usageErr("-postgres needs -namespace, the store's namespace")
	case pg && ff.Schema == "":
		return usageErr("-schema names no schema")
	case !etcd && (ff.Prefix != "" || ff.CACert != "" || ff.Cert != "" || ff.Key != "" || ff.User != ""):
		return usageErr("-prefix and the -etcd-… flags go with -etcd")
	case etcd && ff.Prefix == "":
		return usageErr("-etcd needs -prefix, the store's etcd prefix")
	case (ff.Cert == "") != (ff.Key == ""):
		return usageErr("-etcd-cert and -etcd-key go together")
	case retire && !etcd && !pg:
		return usageErr("-retire needs -etcd URLS -prefix P or -postgres URL -namespace N")
	case !initFlag && !stage && !etcd && !pg && len(dirs) == 0:
		if len(args) == 0 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		return usageErr("no store directory: give at least one -dir, or -etcd URLS -prefix P, or -postgres URL -namespace N")
	case (etcd || pg) && keepOld:
		return usageErr("-keep-old goes with -dir; with %s, the old keys stay until -retire", fleetFlag)
	case (etcd || pg) && set["pq"]:
		return usageErr("-pq goes with -init, -stage or -dir; with %s, stage a post-quantum key with -stage -pq", fleetFlag)
	case stage && (keepOld || dryRun || jsonOut):
		return usageErr("-stage takes no -keep-old, -dry-run or -json")
	case jsonOut && !check:
		return usageErr("-json goes with -check")
	case check && (set["pq"] || keepOld || dryRun):
		return usageErr("-check takes no -pq, -keep-old or -dry-run")
	case workers < 1:
		return usageErr("-j must be at least 1")
	case len(sealTo) > 0 && !initFlag:
		return usageErr("-seal-to goes with -init; later rewrites seal to FILE%s", crypto.SealedToSuffix)
	case len(sealTo) > 0 && passFile != "":
		return usageErr("-seal-to and -passphrase-file do not go together")
	case len(sealTo) > 0 && keyFile == "-":
		return usageErr("-seal-to needs a key file, beside which it writes FILE%s", crypto.SealedToSuffix)
	}
	if !c.KeyFile(&keyFile) {
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	passphrase := cliutil.Passphrase(passFile)
	id := crypto.KeyIdentity{File: identity}
	switch {
	case etcd || pg:
		dctx, cancel := context.WithTimeout(ctx, cliutil.DialTimeout)
		b, err := ff.Dial(dctx, pg, stderr)
		cancel()
		if err != nil {
			return c.Fail(err)
		}
		defer b.Close()
		if check {
			return runFleetCheck(ctx, c, b, keyFile, protocol.CheckOptions{Workers: workers, Passphrase: passphrase, Identity: id}, jsonOut)
		}
		return runFleetRotate(ctx, c, b, keyFile, retire, protocol.RotateOptions{DryRun: dryRun, Workers: workers, Passphrase: passphrase, Identity: id})
	case initFlag:
		return runInit(c, keyFile, pq, passphrase, sealTo)
	case stage:
		return runStage(ctx, c, keyFile, protocol.StageOptions{Kind: kind, Passphrase: passphrase, Identity: id})
	case check:
		statuses, err := filestore.Check(ctx, keyFile, dirs, filestore.CheckOptions{Workers: workers, Passphrase: passphrase, Identity: id})
		if err != nil {
			return c.Fail(err)
		}
		bad, err := printRecords(stdout, statuses, jsonOut)
		switch {
		case err != nil:
			return c.Fail(err)
		case bad > 0:
			return c.Fail(fmt.Errorf("%d of %d records are not under the primary key", bad, len(statuses)))
		case !jsonOut:
			fmt.Fprintf(stdout, "all %d records open with the primary key\n", len(statuses))
		}
		return 0
	default:
		return runRotate(ctx, c, keyFile, dirs, filestore.RotateOptions{
			Kind: kind, KeepOld: keepOld, DryRun: dryRun, Workers: workers,
			Progress: progressLine(stderr), Passphrase: passphrase, Identity: id,
		})
	}
}

func runInit(c cliutil.Command, keyFile string, pq bool, passphrase func() (string, error), sealTo []string) int {
	exists := func() int {
		return c.Fail(fmt.Errorf("%s already exists, and rekey never overwrites a key file: to rotate its key, run rekey -key %s -dir DIR "+
			"(or rekey -stage -key %s for a store on etcd or PostgreSQL); for a new key, choose another path", keyFile, keyFile, keyFile))
	}
	if keyFile != "-" { // before asking for a passphrase
		if _, err := os.Lstat(keyFile); err == nil {
			return exists()
		}
	}
	k, err := crypto.GenerateKeyring(pq)
	if err != nil {
		return c.Fail(err)
	}
	pass := ""
	if passphrase != nil {
		if pass, err = passphrase(); err != nil {
			return c.Fail(err)
		}
	}
	switch {
	case keyFile == "-": // as age-keygen: the key to standard output
		err = crypto.WriteKeyFile(c.Stdout, k, pass)
	case len(sealTo) > 0:
		if err = crypto.CreateSealedKeyFile(keyFile, k, sealTo, nil); errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("%s or %s%s already exists, and rekey never overwrites a key file; nothing changed", keyFile, keyFile, crypto.SealedToSuffix)
		} else if err == nil {
			fmt.Fprintf(c.Stderr, "Sealed to %d recipient(s), listed in %s%s\n", len(sealTo), keyFile, crypto.SealedToSuffix)
		}
	default:
		if err = crypto.CreateKeyFileWithPassphrase(keyFile, k, pass); errors.Is(err, fs.ErrExist) {
			return exists() // made meanwhile
		}
	}
	if err != nil {
		return c.Fail(err)
	}
	fmt.Fprintf(c.Stderr, "Public key: %s\n", k.PublicKey(0))
	return 0
}

// printRecords prints -check's line (with -json: object) of each record
// and returns how many are not under the primary key.
func printRecords(w io.Writer, statuses []filestore.RecordStatus, jsonOut bool) (bad int, err error) {
	enc := json.NewEncoder(w)
	for _, st := range statuses {
		if st.Err != nil || st.Key != 0 {
			bad++
		}
		switch {
		case jsonOut:
			if err := enc.Encode(st); err != nil {
				return bad, err
			}
		case st.Err != nil:
			fmt.Fprintf(w, "FAIL     %s: %v\n", st.Location, st.Err)
		case st.Key != 0:
			fmt.Fprintf(w, "OLD KEY  %s: sealed to decrypt-only key %d (%s)\n", st.Location, st.Key, st.PublicKey)
		default:
			expires := ""
			if !st.Expiry.IsZero() {
				expires = ", token expires " + st.Expiry.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "primary  %s (written %s%s)\n", st.Location, st.Written.UTC().Format(time.RFC3339), expires)
		}
	}
	return bad, nil
}

// printFailed prints the records that did not open; it returns how many
// were resealed.
func printFailed(w io.Writer, records []protocol.RecordStatus) (resealed int) {
	for _, st := range records {
		if st.Err != nil {
			fmt.Fprintf(w, "FAIL     %s: %v\n", st.Location, st.Err)
		}
		if st.Resealed {
			resealed++
		}
	}
	return resealed
}

func runRotate(ctx context.Context, c cliutil.Command, keyFile string, dirs []string, opts filestore.RotateOptions) int {
	rep, err := filestore.Rotate(ctx, keyFile, dirs, opts)
	n := 0
	if rep != nil {
		n = printFailed(c.Stdout, rep.Records)
	}
	if err != nil {
		return c.Fail(err)
	}
	w := c.Stdout
	if opts.DryRun {
		what := "make a new"
		if rep.Resumed {
			what = "finish the interrupted rotation with its new"
		}
		fmt.Fprintf(w, "dry run: would %s %s primary key and reseal %d records; nothing changed\n", what, rep.Kind, len(rep.Records))
		kindChange(c.Stderr, rep.Kind, rep.OldKind, "would be", "is")
		return 0
	}
	if rep.Resumed {
		fmt.Fprintf(w, "resumed an interrupted rotation, with the new key it made\n")
	}
	fmt.Fprintf(w, "new primary key: %s\n", rep.NewPublicKey)
	kindChange(c.Stderr, rep.Kind, rep.OldKind, "is", "was")
	fmt.Fprintf(w, "resealed %d of %d records; all open with the new key\n", n, len(rep.Records))
	if rep.Retired > 0 {
		fmt.Fprintf(w, "retired %d old key(s)\n", rep.Retired)
	} else {
		fmt.Fprintf(w, "old keys kept, decrypt-only\n")
	}
	return 0
}

// kindChange says when the new primary's kind differs from the old one's.
func kindChange(stderr io.Writer, kind, old crypto.Kind, is, was string) {
	if kind != old {
		fmt.Fprintf(stderr, "rekey: new primary %s %s; the old primary %s %s\n", is, kind, was, old)
	}
}

// progressLine reports progress on a terminal when there are many records.
func progressLine(stderr io.Writer) func(filestore.RotateEvent) {
	if !cliutil.IsTerminal(stderr) {
		return nil
	}
	return func(ev filestore.RotateEvent) {
		switch {
		case ev.Total < 100:
		case ev.Step == "resealed" && (ev.Done%100 == 0 || ev.Done == ev.Total):
			fmt.Fprintf(stderr, "\rrekey: resealed %d/%d", ev.Done, ev.Total)
		case ev.Step == "verified":
			fmt.Fprintf(stderr, "\rrekey: verified %d records    \n", ev.Total)
		}
	}
}
