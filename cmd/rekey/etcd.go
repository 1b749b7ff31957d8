package main

import (
	"context"
	"fmt"
	"io"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/cliutil"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// etcdFlags are the flags that reach an etcd cluster and a prefix.
type etcdFlags struct {
	cliutil.EtcdFlags
	prefix string
}

// dial returns a client of the cluster, after one request has reached it
// (see cliutil.Etcd).
func (f etcdFlags) dial(ctx context.Context, stderr io.Writer) (*clientv3.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, cliutil.DialTimeout)
	defer cancel()
	return cliutil.Etcd(ctx, f.EtcdFlags, f.prefix, stderr)
}

// fleet is the prefix on c.
func (f etcdFlags) fleet(c *clientv3.Client) fleet {
	return fleet{
		flag:  "-etcd",
		flags: fmt.Sprintf("-etcd %s -prefix %s", f.URLs, f.prefix),
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
