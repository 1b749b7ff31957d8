package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sessionstore/sessionstore/internal/cliutil"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

func runStage(ctx context.Context, c cliutil.Command, keyFile string, opts protocol.StageOptions) int {
	rep, err := protocol.Stage(ctx, keyFile, opts)
	if err != nil {
		return c.Fail(err)
	}
	stdout := c.Stdout
	if rep.Already {
		fmt.Fprintf(stdout, "already staged: %s (%s); nothing changed\n", rep.PublicKey, rep.Fingerprint)
	} else {
		fmt.Fprintf(stdout, "staged key: %s (%s), decrypt-only until promoted\n", rep.PublicKey, rep.Fingerprint)
	}
	if rep.Kind != rep.PrimaryKind {
		fmt.Fprintf(c.Stderr, "rekey: the staged key is %s; the primary is %s: promoting it changes the kind\n", rep.Kind, rep.PrimaryKind)
	}
	fmt.Fprintf(stdout, "next: distribute %s to every host, then run: rekey -key %s -etcd URLS -prefix P (or -postgres URL -namespace N)\n", keyFile, keyFile)
	return 0
}

func runFleetRotate(ctx context.Context, c cliutil.Command, f *cliutil.Backend, keyFile string, retire bool, opts protocol.RotateOptions) int {
	step := f.Promote
	if retire {
		step = f.Retire
	}
	rep, err := step(ctx, keyFile, opts)
	stdout, stderr := c.Stdout, c.Stderr
	n := 0
	if rep != nil {
		for _, h := range rep.Lacking {
			fmt.Fprintf(stdout, "NOT READY %s\n", describeHost(h, rep.Fingerprint))
		}
		n = printFailed(stdout, rep.Records)
	}
	if err != nil {
		return c.Fail(err)
	}
	switch {
	case opts.DryRun && retire:
		fmt.Fprintf(stdout, "dry run: %s; would reseal the records under old keys among %d and retire the old keys; nothing changed\n",
			hostsReady(len(rep.Hosts), "uses "+rep.Fingerprint+" as its primary", "use "+rep.Fingerprint+" as their primary"), len(rep.Records))
	case opts.DryRun:
		fmt.Fprintf(stdout, "dry run: %s; would promote it and reseal %d records; nothing changed\n",
			hostsReady(len(rep.Hosts), "holds the staged key "+rep.Fingerprint, "hold the staged key "+rep.Fingerprint), len(rep.Records))
		kindChange(stderr, rep.Kind, rep.OldKind, "would be", "is")
	case retire && rep.Retired == 0:
		fmt.Fprintf(stdout, "no old keys in %s; nothing to retire\n", keyFile)
	case retire:
		fmt.Fprintf(stdout, "resealed %d of %d records; all open with the primary key %s\n", n, len(rep.Records), rep.Fingerprint)
		fmt.Fprintf(stdout, "retired %d old key(s)\n", rep.Retired)
		fmt.Fprintf(stdout, "next: distribute %s to every host\n", keyFile)
	default:
		if rep.Resumed {
			fmt.Fprintf(stdout, "resumed an interrupted promotion\n")
		}
		fmt.Fprintf(stdout, "new primary key: %s (%s)\n", rep.PublicKey, rep.Fingerprint)
		kindChange(stderr, rep.Kind, rep.OldKind, "is", "was")
		fmt.Fprintf(stdout, "resealed %d of %d records; %d under the old key (written meanwhile by hosts with the previous key file)\n",
			n, len(rep.Records), rep.Stragglers)
		fmt.Fprintf(stdout, "next: distribute %s to every host, then run: rekey -retire -key %s %s\n", keyFile, keyFile, f.Flags)
	}
	return 0
}

func runFleetCheck(ctx context.Context, c cliutil.Command, f *cliutil.Backend, keyFile string, opts protocol.CheckOptions, jsonOut bool) int {
	fail, stdout := c.Fail, c.Stdout
	rep, err := f.Check(ctx, keyFile, opts)
	if err != nil {
		return fail(err)
	}
	badRecs, err := printRecords(stdout, rep.Records, jsonOut)
	if err != nil {
		return fail(err)
	}
	badHosts := 0
	enc := json.NewEncoder(stdout)
	for _, h := range rep.Hosts {
		uses := h.Primary() == rep.Fingerprint
		if !uses {
			badHosts++
		}
		if jsonOut {
			if err := enc.Encode(struct {
				ID string `json:"host_id"`
				protocol.Host
				UsesPrimary bool `json:"uses_primary"`
			}{h.ID, h, uses}); err != nil {
				return fail(err)
			}
			continue
		}
		lacks := ""
		if rep.Staged != "" && !h.Holds(rep.Staged) {
			lacks = "; LACKS the staged key"
		}
		fmt.Fprintf(stdout, "host     %s%s\n", describeHost(h, rep.Fingerprint), lacks)
	}
	if !jsonOut && rep.Staged != "" {
		fmt.Fprintf(stdout, "staged   %s: decrypt-only until promoted (rekey -key %s %s …)\n", rep.Staged, keyFile, f.Flag)
	}
	var errs []error
	if badRecs > 0 {
		errs = append(errs, fmt.Errorf("%d of %d records are not under the primary key", badRecs, len(rep.Records)))
	}
	if badHosts > 0 {
		errs = append(errs, fmt.Errorf("%d of %d live hosts do not use the primary key %s of %s", badHosts, len(rep.Hosts), rep.Fingerprint, keyFile))
	}
	if len(errs) > 0 {
		return fail(errors.Join(errs...))
	}
	if !jsonOut {
		fmt.Fprintf(stdout, "all %d records open with the primary key %s; %s\n", len(rep.Records), rep.Fingerprint, hostsReady(len(rep.Hosts), "uses it", "use it"))
	}
	return 0
}

// hostsReady says that the n live hosts all do what one does.
func hostsReady(n int, one, many string) string {
	switch n {
	case 0:
		return "no live hosts"
	case 1:
		return "the one live host " + one
	}
	return fmt.Sprintf("all %d live hosts %s", n, many)
}

// describeHost describes a live host and its keys, against primary.
func describeHost(h protocol.Host, primary string) string {
	what := "primary " + h.Primary()
	if h.Primary() == primary {
		what += " (the key file's primary)"
	}
	return fmt.Sprintf("%s pid %d (lease %s): %s; keys %s", h.Host, h.PID, h.ID, what, strings.Join(h.Keys, ", "))
}
