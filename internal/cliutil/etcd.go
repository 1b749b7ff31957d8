package cliutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore/etcdstore"
)

// EtcdPasswordEnv holds the password of -etcd-user.
const EtcdPasswordEnv = "ETCD_PASSWORD"

// EtcdFlags are the commands' options of the etcd client.
type EtcdFlags struct {
	URLs, CACert, Cert, Key, User string
}

// Etcd returns a client of f.URLs, after a read of prefix has reached
// etcd within ctx. The client logs etcd's errors, as text, to stderr;
// -etcd-user's password comes from $ETCD_PASSWORD. The caller closes the
// client.
func Etcd(ctx context.Context, f EtcdFlags, prefix string, stderr io.Writer) (*clientv3.Client, error) {
	var endpoints []string
	for u := range strings.SplitSeq(f.URLs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			endpoints = append(endpoints, u)
		}
	}
	if len(endpoints) == 0 {
		return nil, errors.New("-etcd: no endpoint")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: DialTimeout, Logger: etcdstore.ClientLogger(log)}
	var err error
	if cfg.TLS, err = f.tls(endpoints); err != nil {
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
		return nil, fmt.Errorf("etcd %s: %w", f.URLs, err)
	}
	// Does etcd answer, and may we read the prefix? Asked before anything
	// else, so that an unreachable etcd is reported as such.
	pfx := strings.TrimRight(prefix, "/") + "/"
	if _, err := c.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("etcd %s did not answer in time (is it running, and are -etcd-* right?): %w", f.URLs, ctx.Err())
		}
		return nil, fmt.Errorf("etcd %s: reading %s: %w", f.URLs, strconv.Quote(pfx), err)
	}
	return c, nil
}

// tls is the client's TLS configuration: nil for plain http endpoints
// without certificate flags.
func (f EtcdFlags) tls(endpoints []string) (*tls.Config, error) {
	secure := f.CACert != "" || f.Cert != "" || f.Key != ""
	for _, e := range endpoints {
		secure = secure || strings.HasPrefix(e, "https://")
	}
	if !secure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CACert != "" {
		pem, err := os.ReadFile(f.CACert)
		if err != nil {
			return nil, fmt.Errorf("etcd CA certificate %s: %w", strconv.Quote(f.CACert), pathErrCause(err))
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA certificate %s: no PEM certificate in it", strconv.Quote(f.CACert))
		}
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate %s (key %s): %w", strconv.Quote(f.Cert), strconv.Quote(f.Key), pathErrCause(err))
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// pathErrCause is err without the path an *fs.PathError repeats (the
// message names the file already, quoted).
func pathErrCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
