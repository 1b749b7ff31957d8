package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// etcdPasswordEnv holds the password of -etcd-user: never on the command
// line, where ps shows it.
const etcdPasswordEnv = "ETCD_PASSWORD"

// etcdFlags are the options of the etcd client.
type etcdFlags struct {
	urls, cacert, cert, key, user string
}

// etcdBackend is an etcd prefix, read and written through etcdstore.
type etcdBackend struct {
	client *clientv3.Client
	store  *etcdstore.Store
}

// openEtcd connects to f.urls and opens the store under prefix.
func openEtcd(ctx context.Context, f etcdFlags, prefix, keyFile string, passphrase func() (string, error), stderr io.Writer) (*etcdBackend, error) {
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
				return nil, fmt.Errorf("etcd CA certificate: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("etcd CA certificate %s: no PEM certificate in it", f.cacert)
			}
		}
		if f.cert != "" {
			c, err := tls.LoadX509KeyPair(f.cert, f.key)
			if err != nil {
				return nil, fmt.Errorf("etcd client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{c}
		}
		cfg.TLS = tc
	}
	client, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", f.urls, err)
	}
	opts := []etcdstore.Option{etcdstore.WithKeyFile(keyFile)}
	if passphrase != nil {
		opts = append(opts, etcdstore.WithPassphrase(passphrase))
	}
	store, err := etcdstore.Open(ctx, client, prefix, opts...)
	if err != nil {
		client.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("etcd %s did not answer in time (is it running, and are -etcd-* right?): %w", f.urls, err)
		}
		return nil, err
	}
	return &etcdBackend{client: client, store: store}, nil
}

func (b *etcdBackend) Close() error {
	err := b.store.Close()
	b.client.Close()
	return err
}

func (b *etcdBackend) recordsPrefix() string { return b.store.Prefix() + "/records/" }

func (b *etcdBackend) List(ctx context.Context) ([]record, error) {
	return b.list(ctx, "")
}

// list reports the records (only name's, unless name is ""). It reads
// the sealed records itself, to say which identity opens each one; the
// names are those the Store lists, so a key that is no record of this
// store is skipped as etcdstore skips it.
func (b *etcdBackend) list(ctx context.Context, name string) ([]record, error) {
	names, err := b.store.List(ctx)
	if err != nil {
		return nil, err
	}
	pfx := b.recordsPrefix()
	resp, err := b.client.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: read %s: %w", pfx, err)
	}
	ring := b.store.Keyring()
	var recs []record
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		n, ok := unescape(strings.TrimPrefix(key, pfx))
		if !ok || !slices.Contains(names, n) || name != "" && n != name {
			continue
		}
		r := record{Name: n, Key: -1}
		rec, i, err := ring.OpenIn(kv.Value, b.store.Prefix(), n)
		if err == nil {
			r.Auth, err = wire.DecodeAuth(rec.Auth)
		}
		if err != nil {
			r.Err = fmt.Errorf("%s: %w", key, err)
		} else {
			r.Key, r.PublicKey, r.Seq, r.Written = i, ring.PublicKey(i), rec.Seq, rec.Written
		}
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.Name, b.Name) })
	return recs, nil
}

// unescape reverses the %xx escaping of a key stem; etcdstore's List
// vouches that the result is the name of that key.
func unescape(stem string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(stem); i++ {
		if stem[i] != '%' {
			b.WriteByte(stem[i])
			continue
		}
		if i+2 >= len(stem) {
			return "", false
		}
		c, err := strconv.ParseUint(stem[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(c))
		i += 2
	}
	return b.String(), true
}

func (b *etcdBackend) Get(ctx context.Context, name string) (record, error) {
	if err := sessionstore.ValidateAuthType(name); err != nil {
		return record{}, err
	}
	recs, err := b.list(ctx, name)
	if err != nil {
		return record{}, err
	}
	if len(recs) == 0 {
		return record{}, b.notFound(name)
	}
	return recs[0], nil
}

func (b *etcdBackend) notFound(name string) error {
	return fmt.Errorf("%w %s under %s", errNoSession, strconv.Quote(name), b.recordsPrefix())
}

func (b *etcdBackend) Delete(ctx context.Context, name string) error {
	if err := sessionstore.ValidateAuthType(name); err != nil {
		return err
	}
	names, err := b.store.List(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(names, name) {
		return b.notFound(name)
	}
	return b.store.Delete(ctx, name)
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
