package cliutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5/pgxpool"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/protocol"
	"github.com/sessionstore/sessionstore/pgstore"
)

// DialTimeout bounds reaching etcd or PostgreSQL (a variable for tests).
var DialTimeout = 10 * time.Second

// EtcdPasswordEnv holds the password of -etcd-user.
const EtcdPasswordEnv = "ETCD_PASSWORD"

// FleetFlags are the flags that name a fleet: -etcd URLS -prefix P (with
// -etcd-cacert, -etcd-cert, -etcd-key, -etcd-user), or -postgres URL
// -namespace N [-schema S].
type FleetFlags struct {
	Etcd, Prefix, CACert, Cert, Key, User string
	Postgres, Namespace, Schema           string
}

// Register defines the flags in fs.
func (f *FleetFlags) Register(fs *flag.FlagSet) {
	for name, p := range map[string]*string{
		"etcd": &f.Etcd, "prefix": &f.Prefix, "etcd-cacert": &f.CACert, "etcd-cert": &f.Cert,
		"etcd-key": &f.Key, "etcd-user": &f.User, "postgres": &f.Postgres, "namespace": &f.Namespace,
	} {
		fs.StringVar(p, name, "", "")
	}
	fs.StringVar(&f.Schema, "schema", pgstore.DefaultSchema, "")
}

// A Backend is a backend's functions bound to one store. Only Open opens
// a Store (a lease, a heartbeat).
type Backend struct {
	Flag  string // "-etcd" or "-postgres"
	Flags string // the flags that name it, in a command to run next
	Where string // where its records are, quoted: `under "/p"`

	ReadRecords     func(ctx context.Context, ring *crypto.Keyring) ([]protocol.Record, error)
	ReadRecord      func(ctx context.Context, ring *crypto.Keyring, name string) (protocol.Record, error)
	Remove          func(ctx context.Context, name string) error
	Open            func(ctx context.Context, keyFile string, passphrase func() (string, error), identity string) (sessionstore.Store, error)
	Promote, Retire func(ctx context.Context, keyFile string, opts protocol.RotateOptions) (*protocol.RotateReport, error)
	Check           func(ctx context.Context, keyFile string, opts protocol.CheckOptions) (*protocol.CheckReport, error)
	Close           func()

	server, hint string // in Unanswered's message
}

// Unanswered is the error of a fleet that did not answer in time.
func (b *Backend) Unanswered(err error) error {
	return fmt.Errorf("%s did not answer in time (is it running, and %s right?): %w", b.server, b.hint, err)
}

// Dial connects to the fleet, PostgreSQL if pg else etcd, and checks that
// it answers within ctx. etcd's client logs its errors to stderr. Errors
// never hold a password.
func (f FleetFlags) Dial(ctx context.Context, pg bool, stderr io.Writer) (*Backend, error) {
	if pg {
		return f.dialPostgres(ctx)
	}
	return f.dialEtcd(ctx, stderr)
}

func (f FleetFlags) dialEtcd(ctx context.Context, stderr io.Writer) (*Backend, error) {
	prefix := strings.TrimRight(f.Prefix, "/")
	if prefix == "" {
		return nil, fmt.Errorf("-prefix %s names no prefix: give the service its own, such as /sessionstore/prod", strconv.Quote(f.Prefix))
	}
	endpoints := strings.FieldsFunc(f.Etcd, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(endpoints) == 0 {
		return nil, errors.New("-etcd: no endpoint")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: DialTimeout, Logger: etcdstore.ClientLogger(log)}
	var err error
	if cfg.TLS, err = f.etcdTLS(endpoints); err != nil {
		return nil, err
	}
	if f.User != "" {
		pass := os.Getenv(EtcdPasswordEnv)
		if pass == "" {
			return nil, fmt.Errorf("-etcd-user %s: set the password in $%s", strconv.Quote(f.User), EtcdPasswordEnv)
		}
		cfg.Username, cfg.Password = f.User, pass
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", f.Etcd, err)
	}
	b := &Backend{
		Flag: "-etcd", Flags: fmt.Sprintf("-etcd %s -prefix %s", f.Etcd, f.Prefix), Where: "under " + strconv.Quote(prefix),
		server: "etcd " + f.Etcd, hint: "are -etcd-*",
		ReadRecords: func(ctx context.Context, ring *crypto.Keyring) ([]protocol.Record, error) {
			return etcdstore.ReadRecords(ctx, c, prefix, ring)
		},
		ReadRecord: func(ctx context.Context, ring *crypto.Keyring, name string) (protocol.Record, error) {
			return etcdstore.ReadRecord(ctx, c, prefix, ring, name)
		},
		Remove: func(ctx context.Context, name string) error { return etcdstore.Remove(ctx, c, prefix, name) },
		Open: func(ctx context.Context, keyFile string, passphrase func() (string, error), identity string) (sessionstore.Store, error) {
			return etcdstore.Open(ctx, c, prefix, etcdstore.WithKeyFile(keyFile), etcdstore.WithKeyIdentity(identity), etcdstore.WithPassphrase(passphrase))
		},
		Promote: func(ctx context.Context, keyFile string, opts protocol.RotateOptions) (*protocol.RotateReport, error) {
			return etcdstore.Promote(ctx, c, prefix, keyFile, opts)
		},
		Retire: func(ctx context.Context, keyFile string, opts protocol.RotateOptions) (*protocol.RotateReport, error) {
			return etcdstore.Retire(ctx, c, prefix, keyFile, opts)
		},
		Check: func(ctx context.Context, keyFile string, opts protocol.CheckOptions) (*protocol.CheckReport, error) {
			return etcdstore.Check(ctx, c, prefix, keyFile, opts)
		},
		Close: func() { c.Close() },
	}
	// Does etcd answer, and may we read the prefix? Asked before anything
	// else, so that an unreachable etcd is reported as such.
	if _, err := c.Get(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, b.Unanswered(ctx.Err())
		}
		return nil, fmt.Errorf("etcd %s: reading %s: %w", f.Etcd, strconv.Quote(prefix+"/"), err)
	}
	return b, nil
}

// etcdTLS is nil for http endpoints without certificate flags.
func (f FleetFlags) etcdTLS(endpoints []string) (*tls.Config, error) {
	https := func(e string) bool { return strings.HasPrefix(e, "https://") }
	if f.CACert == "" && f.Cert == "" && f.Key == "" && !slices.ContainsFunc(endpoints, https) {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CACert != "" {
		pem, err := os.ReadFile(f.CACert)
		if err != nil {
			return nil, fmt.Errorf("etcd CA certificate %s: %w", strconv.Quote(f.CACert), PathErrCause(err))
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA certificate %s: no PEM certificate in it", strconv.Quote(f.CACert))
		}
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate %s (key %s): %w", strconv.Quote(f.Cert), strconv.Quote(f.Key), PathErrCause(err))
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func (f FleetFlags) dialPostgres(ctx context.Context) (*Backend, error) {
	cfg, err := pgxpool.ParseConfig(f.Postgres)
	if err != nil {
		// pgconn's parse errors show the string with its password redacted.
		return nil, fmt.Errorf("-postgres: %w", err)
	}
	c := cfg.ConnConfig
	name := strconv.Quote(fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", name, err)
	}
	// A command's Store needs no listening connection (and so works
	// through a transaction-pooling proxy).
	opts := []pgstore.Option{pgstore.WithSchema(f.Schema), pgstore.WithoutListen()}
	ns := f.Namespace
	b := &Backend{
		Flag: "-postgres", Flags: fmt.Sprintf("-postgres %s -namespace %s", postgresFlag(f.Postgres), strconv.Quote(ns)),
		Where:  fmt.Sprintf("in namespace %s of %s", strconv.Quote(ns), name),
		server: "postgres " + name, hint: "is -postgres",
		ReadRecords: func(ctx context.Context, ring *crypto.Keyring) ([]protocol.Record, error) {
			return pgstore.ReadRecords(ctx, pool, ns, ring, opts...)
		},
		ReadRecord: func(ctx context.Context, ring *crypto.Keyring, name string) (protocol.Record, error) {
			return pgstore.ReadRecord(ctx, pool, ns, ring, name, opts...)
		},
		Remove: func(ctx context.Context, name string) error { return pgstore.Remove(ctx, pool, ns, name, opts...) },
		Open: func(ctx context.Context, keyFile string, passphrase func() (string, error), identity string) (sessionstore.Store, error) {
			return pgstore.Open(ctx, pool, ns, append([]pgstore.Option{pgstore.WithKeyFile(keyFile),
				pgstore.WithKeyIdentity(identity), pgstore.WithPassphrase(passphrase)}, opts...)...)
		},
		Promote: func(ctx context.Context, keyFile string, ro protocol.RotateOptions) (*protocol.RotateReport, error) {
			return pgstore.Promote(ctx, pool, ns, keyFile, ro, opts...)
		},
		Retire: func(ctx context.Context, keyFile string, ro protocol.RotateOptions) (*protocol.RotateReport, error) {
			return pgstore.Retire(ctx, pool, ns, keyFile, ro, opts...)
		},
		Check: func(ctx context.Context, keyFile string, co protocol.CheckOptions) (*protocol.CheckReport, error) {
			return pgstore.Check(ctx, pool, ns, keyFile, co, opts...)
		},
		Close: pool.Close,
	}
	if f.Schema != pgstore.DefaultSchema {
		b.Flags += " -schema " + strconv.Quote(f.Schema)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		if ctx.Err() != nil {
			return nil, b.Unanswered(err)
		}
		return nil, fmt.Errorf("postgres %s: %w", name, err)
	}
	return b, nil
}

// postgresFlag is connString as a -postgres argument to print in a
// command to run next: quoted, or "URL" when it holds a password.
func postgresFlag(connString string) string {
	if u, err := url.Parse(connString); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return "URL"
		}
	}
	if strings.Contains(strings.ToLower(connString), "password") {
		return "URL"
	}
	return strconv.Quote(connString)
}
