package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sessionstore/sessionstore/crypto"
)

// servePrefix is the prefix of the command lines that -serve prints.
const servePrefix = "/sessionstore/demo"

// serve is -serve: one embedded etcd member on loopback, for trying the
// commands (sessionstore, rekey) on an etcd prefix. Its data and a demo key
// file are in a temporary directory, removed when it stops. It prints the
// -etcd URL and command lines that use it, and serves until ctx ends (the
// caller cancels ctx on SIGINT or SIGTERM); then it stops the member and
// removes the directory.
func serve(ctx context.Context, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "sessionstore-serve-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	peer, err := freeURL()
	if err != nil {
		return err
	}
	client, err := freeURL()
	if err != nil {
		return err
	}
	m, err := startMember(memberConfig{Name: "serve", Dir: filepath.Join(tmp, "etcd"), PeerURL: peer, Client: client}, 60*time.Second)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			m.close()
		}
	}()
	keyFile := filepath.Join(tmp, "sessionstore.key")
	k, err := crypto.GenerateKeyring(false)
	if err != nil {
		return err
	}
	if err := crypto.CreateKeyFile(keyFile, k); err != nil {
		return err
	}

	e := "-etcd " + m.endpoint + " -prefix " + servePrefix
	lines := []string{
		"export " + crypto.KeyFileEnv + "=" + keyFile + "   # -key's default",
		"",
		"# import two podio-js sessions, list them, show one (tokens redacted)",
		"sessionstore import -podiojs " + e + " testdata/podiojs/password.json testdata/podiojs/app.json",
		"sessionstore ls " + e,
		"sessionstore show " + e + " password",
		"",
		"# rotate the key across hosts: 1. stage a new key, decrypt-only; 2. promote",
		"# it and reseal every record; 3. drop the old key; then check (exit 0)",
		"rekey -stage",
		"rekey " + e,
		"rekey -retire " + e,
		"rekey -check " + e,
	}
	fmt.Fprintf(out, `sessionstore fleet demo, -serve: one embedded etcd member on loopback

  etcd      -etcd %s
  data      %s (removed at exit)
  key file  %s (a demo key, removed at exit)

Try the commands on it, from the repository's root in another terminal,
once installed (go install ./cmd/rekey ./cmd/sessionstore):

`, m.endpoint, filepath.Join(tmp, "etcd"), keyFile)
	for _, l := range lines {
		if l == "" {
			fmt.Fprintln(out)
			continue
		}
		fmt.Fprintln(out, "  "+l)
	}
	fmt.Fprintln(out, "\nServing until interrupted (Ctrl-C, SIGINT or SIGTERM).")

	select {
	case <-ctx.Done():
	case err := <-m.etcd.Err():
		return fmt.Errorf("etcd: %w", err)
	}
	fmt.Fprintln(out, "stopping etcd")
	m.close()
	stopped = true
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	fmt.Fprintf(out, "etcd stopped; %s removed\n", tmp)
	return nil
}
