package pgtest

import (
	"os"
	"sync"
	"testing"
)

// shared is the one cluster of a test binary that asks for it.
var shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Shared returns the test binary's shared cluster, started on first use
// (about a second, mostly initdb) and stopped by StopShared, which the
// package's TestMain calls. Tests that share it keep apart by namespace.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() {
		if shared.c, shared.err = newCluster(nil); shared.err == nil {
			shared.err = shared.c.initAndStart()
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.c
}

// StopShared stops the shared cluster, if it started, and removes its
// files.
func StopShared() {
	if shared.c != nil {
		if err := shared.c.Stop(); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
		}
		os.RemoveAll(shared.c.dir)
	}
}
