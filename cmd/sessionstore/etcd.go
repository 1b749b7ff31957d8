package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
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
)

// etcdPasswordEnv holds the password of -etcd-user: never on the command
// line, where ps shows it.
const etcdPasswordEnv = "ETCD_PASSWORD"

// etcdFlags are the options of the etcd client.
type etcdFlags struct {
	urls, cacert, cert, key, user string
}

// etcdBackend is an etcd prefix. ls, show and token read it with
// etcdstore.ReadRecords and ReadRecord and rm deletes with
// etcdstore.Remove: none of them opens a Store, so none takes a lease for
// a heartbeat nor appears among the live hosts that rekey checks. Only
// import, which writes sessions sealed to its keys, and token when it
// refreshes, open a Store.
type etcdBackend struct {
	client *clientv3.Client
	prefix string           // without a trailing "/"
	ring   *crypto.Keyring  // ls, show and token
	store  *etcdstore.Store // import; token once it refreshes

	keyFile    string // for the Store token opens
	passphrase func() (string, error)
	identity   string // -identity, for a key file sealed to age recipients
}

// openEtcd connects to f.urls for cmd and checks that etcd answers (a read
// of the prefix, within ctx). ls and show load the key file, import opens
// the store under prefix, rm needs no key.
func openEtcd(ctx context.Context, f etcdFlags, prefix, cmd, keyFile string, passphrase func() (string, error), identity string, stderr io.Writer) (*etcdBackend, error) {
	b := &etcdBackend{prefix: strings.TrimRight(prefix, "/")}
	if b.prefix == "" {
		return nil, fmt.Errorf("-prefix %s names no prefix: give the service its own, such as /sessionstore/prod", strconv.Quote(prefix))
	}
	if cmd == "ls" || cmd == "show" || cmd == "token" {
		var err error
		if b.ring, err = crypto.LoadKeyringWithIdentity(keyFile, passphrase, crypto.KeyIdentity{File: identity}); err != nil {
			return nil, err
		}
	}
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
				return nil, fmt.Errorf("etcd CA certificate %s: %w", strconv.Quote(f.cacert), pathErrCause(err))
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("etcd CA certificate %s: no PEM certificate in it", strconv.Quote(f.cacert))
			}
		}
		if f.cert != "" {
			c, err := tls.LoadX509KeyPair(f.cert, f.key)
			if err != nil {
				return nil, fmt.Errorf("etcd client certificate %s (key %s): %w", strconv.Quote(f.cert), strconv.Quote(f.key), pathErrCause(err))
			}
			tc.Certificates = []tls.Certificate{c}
		}
		cfg.TLS = tc
	}
	client, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", f.urls, err)
	}
	// Does etcd answer, and may we read the prefix? Asked before anything
	// else, so that an unreachable etcd is reported as such.
	if _, err := client.Get(ctx, b.recordsPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		client.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("etcd %s did not answer in time (is it running, and are -etcd-* right?): %w", f.urls, ctx.Err())
		}
		return nil, fmt.Errorf("etcd %s: reading %s: %w", f.urls, strconv.Quote(b.recordsPrefix()), err)
	}
	b.client, b.keyFile, b.passphrase, b.identity = client, keyFile, passphrase, identity
	if cmd == "import" {
		if err := b.openStore(ctx); err != nil {
			client.Close()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("etcd %s did not answer in time (is it running, and are -etcd-* right?): %w", f.urls, err)
			}
			return nil, err
		}
	}
	return b, nil
}

// openStore opens the Store that writes, once.
func (b *etcdBackend) openStore(ctx context.Context) error {
	if b.store != nil {
		return nil
	}
	opts := []etcdstore.Option{etcdstore.WithKeyFile(b.keyFile), etcdstore.WithKeyIdentity(b.identity)}
	if b.passphrase != nil {
		opts = append(opts, etcdstore.WithPassphrase(b.passphrase))
	}
	s, err := etcdstore.Open(ctx, b.client, b.prefix, opts...)
	if err != nil {
		return err
	}
	b.store = s
	return nil
}

func (b *etcdBackend) Close() error {
	var err error
	if b.store != nil {
		err = b.store.Close()
	}
	b.client.Close()
	return err
}

func (b *etcdBackend) recordsPrefix() string { return b.prefix + "/records/" }

func (b *etcdBackend) List(ctx context.Context) ([]record, error) {
	recs, err := etcdstore.ReadRecords(ctx, b.client, b.prefix, b.ring)
	if err != nil {
		return nil, err
	}
	out := make([]record, len(recs))
	for i, r := range recs {
		out[i] = recordOf(r)
	}
	return out, nil
}

// recordOf is what the commands know of r.
func recordOf(r etcdstore.Record) record {
	return record{Name: r.AuthType, Key: r.Key, PublicKey: r.PublicKey, Seq: r.Seq, Written: r.Written, Auth: r.Auth, Err: r.Err}
}

func (b *etcdBackend) Get(ctx context.Context, name string) (record, error) {
	r, err := etcdstore.ReadRecord(ctx, b.client, b.prefix, b.ring, name)
	if errors.Is(err, sessionstore.ErrNotFound) {
		return record{}, b.notFound(name)
	}
	if err != nil {
		return record{}, err
	}
	return recordOf(r), nil
}

func (b *etcdBackend) notFound(name string) error {
	return fmt.Errorf("%w %s under %s", errNoSession, strconv.Quote(name), strconv.Quote(b.recordsPrefix()))
}

func (b *etcdBackend) Delete(ctx context.Context, name string) error {
	err := etcdstore.Remove(ctx, b.client, b.prefix, name)
	if errors.Is(err, sessionstore.ErrNotFound) {
		return b.notFound(name)
	}
	return err
}

func (b *etcdBackend) Put(ctx context.Context, name string, a sessionstore.AuthObject, replace bool) error {
	if err := sessionstore.ValidateAuthType(name); err != nil {
		return err
	}
	if replace {
		return b.store.Set(ctx, name, a)
	}
	_, err := b.store.Update(ctx, name, func(_ sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error) {
		if exists {
			return sessionstore.AuthObject{}, errExists
		}
		return a, nil
	})
	return err
}
