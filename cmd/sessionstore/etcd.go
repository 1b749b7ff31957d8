package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/cliutil"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// etcdFleet is an etcd prefix.
type etcdFleet struct {
	client *clientv3.Client
	urls   string
	prefix string // without a trailing "/"
}

// openEtcd connects to f.urls for cmd and checks that etcd answers (a read
// of the prefix, within ctx). ls and show load the key file, import opens
// the store under prefix, rm needs no key.
func openEtcd(ctx context.Context, f cliutil.EtcdFlags, prefix, cmd, keyFile string, passphrase func() (string, error), identity string, stderr io.Writer) (*fleetBackend, error) {
	e := &etcdFleet{urls: f.URLs, prefix: strings.TrimRight(prefix, "/")}
	if e.prefix == "" {
		return nil, fmt.Errorf("-prefix %s names no prefix: give the service its own, such as /sessionstore/prod", strconv.Quote(prefix))
	}
	return openFleet(ctx, cmd, keyFile, passphrase, identity, func(ctx context.Context) (fleet, error) {
		return e, e.dial(ctx, f, stderr)
	})
}

// dial makes e's client and checks that etcd answers.
func (e *etcdFleet) dial(ctx context.Context, f cliutil.EtcdFlags, stderr io.Writer) (err error) {
	e.client, err = cliutil.Etcd(ctx, f, e.prefix, stderr)
	return err
}

func (e *etcdFleet) unanswered(err error) error {
	return fmt.Errorf("etcd %s did not answer in time (is it running, and are -etcd-* right?): %w", e.urls, err)
}

func (e *etcdFleet) where() string { return "under " + strconv.Quote(e.prefix) }

func (e *etcdFleet) Close() { e.client.Close() }

func (e *etcdFleet) Open(ctx context.Context, keyFile string, passphrase func() (string, error), identity string) (sessionstore.Store, error) {
	opts := []etcdstore.Option{etcdstore.WithKeyFile(keyFile), etcdstore.WithKeyIdentity(identity)}
	if passphrase != nil {
		opts = append(opts, etcdstore.WithPassphrase(passphrase))
	}
	return etcdstore.Open(ctx, e.client, e.prefix, opts...)
}

func (e *etcdFleet) ReadRecords(ctx context.Context, ring *crypto.Keyring) ([]protocol.Record, error) {
	return etcdstore.ReadRecords(ctx, e.client, e.prefix, ring)
}

func (e *etcdFleet) ReadRecord(ctx context.Context, ring *crypto.Keyring, name string) (protocol.Record, error) {
	return etcdstore.ReadRecord(ctx, e.client, e.prefix, ring, name)
}

func (e *etcdFleet) Remove(ctx context.Context, name string) error {
	return etcdstore.Remove(ctx, e.client, e.prefix, name)
}
