package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// etcdPasswordEnv holds the password of -etcd-user: never on the command
// line, where ps shows it.
const etcdPasswordEnv = "ETCD_PASSWORD"

// etcdFlags are the options of the etcd client.
type etcdFlags struct {
	urls, cacert, cert, key, user string
}

// etcdFleet is an etcd prefix.
type etcdFleet struct {
	client *clientv3.Client
	urls   string
	prefix string // without a trailing "/"
}

// openEtcd connects to f.urls for cmd and checks that etcd answers (a read
// of the prefix, within ctx). ls and show load the key file, import opens
// the store under prefix, rm needs no key.
func openEtcd(ctx context.Context, f etcdFlags, prefix, cmd, keyFile string, passphrase func() (string, error), identity string, stderr io.Writer) (*fleetBackend, error) {
	e := &etcdFleet{urls: f.urls, prefix: strings.TrimRight(prefix, "/")}
	if e.prefix == "" {
		return nil, fmt.Errorf("-prefix %s names no prefix: give the service its own, such as /sessionstore/prod", strconv.Quote(prefix))
	}
	return openFleet(ctx, cmd, keyFile, passphrase, identity, func(ctx context.Context) (fleet, error) {
		return e, e.dial(ctx, f, stderr)
	})
}

// dial makes e's client and checks that etcd answers.
func (e *etcdFleet) dial(ctx context.Context, f etcdFlags, stderr io.Writer) error {
	cfg := clientv3.Config{
		Endpoints:   strings.Split(f.urls, ","),
		DialTimeout: 5 * time.Second,
		// etcd's own errors, through our logger; its chatter is dropped.
		Logger: etcdstore.ClientLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))),
	}
	if f.user != "" {
		cfg.Username, cfg.Password = f.user, os.Getenv(etcdPasswordEnv)
	}
	if f.cacert != "" || f.cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if f.cacert != "" {
			pem, err := os.ReadFile(f.cacert)
			if err != nil {
				return fmt.Errorf("etcd CA certificate %s: %w", strconv.Quote(f.cacert), pathErrCause(err))
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("etcd CA certificate %s: no PEM certificate in it", strconv.Quote(f.cacert))
			}
		}
		if f.cert != "" {
			c, err := tls.LoadX509KeyPair(f.cert, f.key)
			if err != nil {
				return fmt.Errorf("etcd client certificate %s (key %s): %w", strconv.Quote(f.cert), strconv.Quote(f.key), pathErrCause(err))
			}
			tc.Certificates = []tls.Certificate{c}
		}
		cfg.TLS = tc
	}
	client, err := clientv3.New(cfg)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", f.urls, err)
	}
	// Does etcd answer, and may we read the prefix? Asked before anything
	// else, so that an unreachable etcd is reported as such.
	if _, err := client.Get(ctx, e.recordsPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		client.Close()
		if ctx.Err() != nil {
			return e.unanswered(ctx.Err())
		}
		return fmt.Errorf("etcd %s: reading %s: %w", f.urls, strconv.Quote(e.recordsPrefix()), err)
	}
	e.client = client
	return nil
}

func (e *etcdFleet) unanswered(err error) error {
	return fmt.Errorf("etcd %s did not answer in time (is it running, and are -etcd-* right?): %w", e.urls, err)
}

func (e *etcdFleet) recordsPrefix() string { return e.prefix + "/records/" }

func (e *etcdFleet) where() string { return "under " + strconv.Quote(e.recordsPrefix()) }

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
