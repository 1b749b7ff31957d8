package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore/etcdstore"
)

// etcdFlags are the flags that reach an etcd cluster.
type etcdFlags struct {
	urls, prefix, cacert, cert, key, user string
}

// dialTimeout bounds connecting to etcd and the first request.
const dialTimeout = 10 * time.Second

// dial returns a client of the cluster, after one request has reached it.
// The client logs through etcdstore.ClientLogger: errors only, as text on
// stderr, never etcd's JSON. The password of -etcd-user comes from
// $ETCD_PASSWORD.
func (f etcdFlags) dial(ctx context.Context, stderr io.Writer) (*clientv3.Client, error) {
	var endpoints []string
	for u := range strings.SplitSeq(f.urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			endpoints = append(endpoints, u)
		}
	}
	if len(endpoints) == 0 {
		return nil, errors.New("-etcd: no endpoint")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: dialTimeout, Logger: etcdstore.ClientLogger(log)}
	tlsCfg, err := f.tls(endpoints)
	if err != nil {
		return nil, err
	}
	cfg.TLS = tlsCfg
	if f.user != "" {
		pass := os.Getenv("ETCD_PASSWORD")
		if pass == "" {
			return nil, fmt.Errorf("-etcd-user %s: set the password in $ETCD_PASSWORD", f.user)
		}
		cfg.Username, cfg.Password = f.user, pass
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", f.urls, err)
	}
	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if _, err := c.Get(pctx, strings.TrimRight(f.prefix, "/")+"/hosts/", clientv3.WithCountOnly()); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd %s: %w", f.urls, err)
	}
	return c, nil
}

// tls is the client's TLS configuration: nil for plain http endpoints
// without certificate flags.
func (f etcdFlags) tls(endpoints []string) (*tls.Config, error) {
	secure := f.cacert != "" || f.cert != "" || f.key != ""
	for _, e := range endpoints {
		secure = secure || strings.HasPrefix(e, "https://")
	}
	if !secure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.cacert != "" {
		pem, err := os.ReadFile(f.cacert)
		if err != nil {
			return nil, fmt.Errorf("-etcd-cacert: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-etcd-cacert %s: no PEM certificate in it", f.cacert)
		}
	}
	if f.cert != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("-etcd-cert/-etcd-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func runStage(ctx context.Context, keyFile string, opts etcdstore.StageOptions, stdout, stderr io.Writer, fail func(error) int) int {
	rep, err := etcdstore.Stage(ctx, keyFile, opts)
	if err != nil {
		return fail(err)
	}
	if rep.Already {
		fmt.Fprintf(stdout, "already staged: %s (%s); nothing changed\n", rep.PublicKey, rep.Fingerprint)
	} else {
		fmt.Fprintf(stdout, "staged key: %s (%s), decrypt-only until promoted\n", rep.PublicKey, rep.Fingerprint)
	}
	if rep.Kind != rep.PrimaryKind {
		fmt.Fprintf(stderr, "rekey: the staged key is %s; the primary is %s: promoting it changes the kind\n", rep.Kind, rep.PrimaryKind)
	}
	fmt.Fprintf(stdout, "next: distribute %s to every host, then run: rekey -key %s -etcd URLS -prefix P\n", keyFile, keyFile)
	return 0
}

func runEtcdRotate(ctx context.Context, c *clientv3.Client, f etcdFlags, keyFile string, retire bool, opts etcdstore.RotateOptions, stdout, stderr io.Writer, fail func(error) int) int {
	step := etcdstore.Promote
	if retire {
		step = etcdstore.Retire
	}
	rep, err := step(ctx, c, f.prefix, keyFile, opts)
	if rep != nil {
		for _, h := range rep.Lacking {
			fmt.Fprintf(stdout, "NOT READY %s\n", describeHost(h, rep.Fingerprint))
		}
		for _, st := range rep.Records {
			if st.Err != nil {
				fmt.Fprintf(stdout, "FAIL     %s: %v\n", st.Location, st.Err)
			}
		}
	}
	if err != nil {
		return fail(err)
	}
	resealed := 0
	for _, st := range rep.Records {
		if st.Resealed {
			resealed++
		}
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
		fmt.Fprintf(stdout, "resealed %d of %d records; all open with the primary key %s\n", resealed, len(rep.Records), rep.Fingerprint)
		fmt.Fprintf(stdout, "retired %d old key(s)\n", rep.Retired)
		fmt.Fprintf(stdout, "next: distribute %s to every host\n", keyFile)
	default:
		if rep.Resumed {
			fmt.Fprintf(stdout, "resumed an interrupted promotion\n")
		}
		fmt.Fprintf(stdout, "new primary key: %s (%s)\n", rep.PublicKey, rep.Fingerprint)
		kindChange(stderr, rep.Kind, rep.OldKind, "is", "was")
		fmt.Fprintf(stdout, "resealed %d of %d records; %d under the old key (written meanwhile by hosts with the previous key file)\n",
			resealed, len(rep.Records), rep.Stragglers)
		fmt.Fprintf(stdout, "next: distribute %s to every host, then run: rekey -retire -key %s -etcd %s -prefix %s\n", keyFile, keyFile, f.urls, f.prefix)
	}
	return 0
}

// hostJSON is a host in -check -json's output.
type hostJSON struct {
	ID          string    `json:"host_id"`
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	Keys        []string  `json:"keys"`
	Time        time.Time `json:"time"`
	UsesPrimary bool      `json:"uses_primary"`
}

func runEtcdCheck(ctx context.Context, c *clientv3.Client, f etcdFlags, keyFile string, opts etcdstore.CheckOptions, jsonOut bool, stdout io.Writer, fail func(error) int) int {
	rep, err := etcdstore.Check(ctx, c, f.prefix, keyFile, opts)
	if err != nil {
		return fail(err)
	}
	badRecs, badHosts := 0, 0
	enc := json.NewEncoder(stdout)
	for _, st := range rep.Records {
		if st.Err != nil || st.Key != 0 {
			badRecs++
		}
		if jsonOut {
			if err := enc.Encode(st); err != nil {
				return fail(err)
			}
			continue
		}
		fmt.Fprintln(stdout, describeEtcd(st))
	}
	for _, h := range rep.Hosts {
		uses := h.Primary() == rep.Fingerprint
		if !uses {
			badHosts++
		}
		if jsonOut {
			if err := enc.Encode(hostJSON{ID: h.ID, Host: h.Host, PID: h.PID, Keys: h.Keys, Time: h.Time, UsesPrimary: uses}); err != nil {
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
		fmt.Fprintf(stdout, "staged   %s: decrypt-only until promoted (rekey -key %s -etcd …)\n", rep.Staged, keyFile)
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

// hostsReady says that the n live hosts all do what one does, or that
// there are none.
func hostsReady(n int, one, many string) string {
	switch n {
	case 0:
		return "no live hosts"
	case 1:
		return "the one live host " + one
	}
	return fmt.Sprintf("all %d live hosts %s", n, many)
}

// describeEtcd is one line of -check -etcd's text output.
func describeEtcd(st etcdstore.RecordStatus) string {
	switch {
	case st.Err != nil:
		return fmt.Sprintf("FAIL     %s: %v", st.Location, st.Err)
	case st.Key == 0:
		return fmt.Sprintf("primary  %s (written %s%s)", st.Location, st.Written.UTC().Format(time.RFC3339), expires(st.Expiry))
	default:
		return fmt.Sprintf("OLD KEY  %s: sealed to decrypt-only key %d (%s)", st.Location, st.Key, st.PublicKey)
	}
}

// describeHost describes a live host and its keys, against primary (a
// fingerprint).
func describeHost(h etcdstore.Host, primary string) string {
	what := "primary " + h.Primary()
	if h.Primary() == primary {
		what += " (the key file's primary)"
	}
	return fmt.Sprintf("%s pid %d (lease %s): %s; keys %s", h.Host, h.PID, h.ID, what, strings.Join(h.Keys, ", "))
}
