package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/etcdtest"
)

// The scripts' etcd: one embedded single-member server for a run of
// TestScripts, started by the first script that asks for it.
type scriptsEtcd struct {
	once sync.Once
	m    *etcdtest.Member
	dir  string
	err  error
}

var testEtcd = new(scriptsEtcd)

// stopEtcd stops the scripts' etcd at the end of TestScripts; the next run
// (go test -count=N) starts its own.
func stopEtcd() {
	if testEtcd.m != nil {
		testEtcd.m.Close()
	}
	if testEtcd.dir != "" {
		os.RemoveAll(testEtcd.dir)
	}
	testEtcd = new(scriptsEtcd)
}

// etcd: start the tests' etcd server if it is not running, and set $ETCD
// to its URL and $PREFIX to a prefix of this script's own.
func cmdEtcd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 0 {
		ts.Fatalf("usage: etcd")
	}
	testEtcd.once.Do(func() {
		if testEtcd.dir, testEtcd.err = os.MkdirTemp("", "sessionstore-cli-etcd-"); testEtcd.err != nil {
			return
		}
		testEtcd.m, testEtcd.err = etcdtest.StartSingle("cli", testEtcd.dir, 60*time.Second)
	})
	ts.Check(testEtcd.err)
	ts.Setenv("ETCD", testEtcd.m.Endpoint)
	ts.Setenv("PREFIX", "/sessionstore-cli/"+filepath.Base(ts.Getenv("WORK")))
}

// openEtcdStore opens $PREFIX on $ETCD with the key file key.
func openEtcdStore(ctx context.Context, ts *testscript.TestScript, key string) (*etcdstore.Store, *clientv3.Client) {
	c, err := etcdtest.Dial(ts.Getenv("ETCD"))
	ts.Check(err)
	s, err := etcdstore.Open(ctx, c, ts.Getenv("PREFIX"), etcdstore.WithKeyFile(ts.MkAbs(key)))
	if err != nil {
		c.Close()
		ts.Fatalf("%v", err)
	}
	return s, c
}

// etcdcp FROM TO: copy the sealed record FROM to the name TO (under
// $PREFIX on $ETCD), byte for byte.
func cmdEtcdCopy(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: etcdcp FROM TO")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := etcdtest.Dial(ts.Getenv("ETCD"))
	ts.Check(err)
	defer c.Close()
	records := ts.Getenv("PREFIX") + "/records/"
	resp, err := c.Get(ctx, records+args[0])
	ts.Check(err)
	if len(resp.Kvs) != 1 {
		ts.Fatalf("no record %s", records+args[0])
	}
	_, err = c.Put(ctx, records+args[1], string(resp.Kvs[0].Value))
	ts.Check(err)
}

// etcdput NAME FILE: store FILE's content as the record NAME (under
// $PREFIX on $ETCD).
func cmdEtcdPut(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: etcdput NAME FILE")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := etcdtest.Dial(ts.Getenv("ETCD"))
	ts.Check(err)
	defer c.Close()
	_, err = c.Put(ctx, fmt.Sprintf("%s/records/%s", ts.Getenv("PREFIX"), args[0]), ts.ReadFile(args[1]))
	ts.Check(err)
}

// etcdrev VAR: set VAR to the current revision of $ETCD.
func cmdEtcdRev(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: etcdrev VAR")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := etcdtest.Dial(ts.Getenv("ETCD"))
	ts.Check(err)
	defer c.Close()
	resp, err := c.Get(ctx, ts.Getenv("PREFIX")+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	ts.Check(err)
	ts.Setenv(args[0], strconv.FormatInt(resp.Header.Revision, 10))
}

// etcdwritten REV SUB: succeed if a key under $PREFIX/SUB was written
// after revision REV, even one deleted since (a heartbeat, a lock): the
// history of every revision since is read.
func cmdEtcdWritten(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: etcdwritten REV SUB")
	}
	since, err := strconv.ParseInt(args[0], 10, 64)
	ts.Check(err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := etcdtest.Dial(ts.Getenv("ETCD"))
	ts.Check(err)
	defer c.Close()
	pfx := ts.Getenv("PREFIX") + "/" + args[1]
	now, err := c.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithCountOnly())
	ts.Check(err)
	var written []string
	for rev := since + 1; rev <= now.Header.Revision; rev++ {
		resp, err := c.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithRev(rev), clientv3.WithMinModRev(since+1))
		ts.Check(err)
		for _, kv := range resp.Kvs {
			written = append(written, fmt.Sprintf("%s (revision %d)", kv.Key, kv.ModRevision))
		}
	}
	switch {
	case neg && len(written) > 0:
		ts.Fatalf("written under %s since revision %d: %v", pfx, since, written)
	case !neg && len(written) == 0:
		ts.Fatalf("nothing written under %s since revision %d", pfx, since)
	}
}
