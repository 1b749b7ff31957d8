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
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/protocol"
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

// fleet is the prefix on c.
func (f etcdFlags) fleet(c *clientv3.Client) fleet {
	return fleet{
		flag:  "-etcd",
		flags: fmt.Sprintf("-etcd %s -prefix %s", f.urls, f.prefix),
		promote: func(ctx context.Context, keyFile string, opts protocol.RotateOptions) (*protocol.RotateReport, error) {
			return etcdstore.Promote(ctx, c, f.prefix, keyFile, opts)
		},
		retire: func(ctx context.Context, keyFile string, opts protocol.RotateOptions) (*protocol.RotateReport, error) {
			return etcdstore.Retire(ctx, c, f.prefix, keyFile, opts)
		},
		check: func(ctx context.Context, keyFile string, opts protocol.CheckOptions) (*protocol.CheckReport, error) {
			return etcdstore.Check(ctx, c, f.prefix, keyFile, opts)
		},
	}
}
