package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/etcdtest"
)

// The scripts' etcd: one embedded single-member server for the test
// binary, started by the first script that asks for it.
var testEtcd struct {
	once sync.Once
	m    *etcdtest.Member
	dir  string
	err  error
}

func stopEtcd() {
	if testEtcd.m != nil {
		testEtcd.m.Close()
	}
	if testEtcd.dir != "" {
		os.RemoveAll(testEtcd.dir)
	}
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
		var peer, client string
		if peer, testEtcd.err = etcdtest.FreeURL(); testEtcd.err != nil {
			return
		}
		if client, testEtcd.err = etcdtest.FreeURL(); testEtcd.err != nil {
			return
		}
		testEtcd.m, testEtcd.err = etcdtest.StartMember(etcdtest.MemberConfig{Name: "cli", Dir: testEtcd.dir, PeerURL: peer, Client: client}, 60*time.Second)
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
