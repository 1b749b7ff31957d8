package pgtest

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// shared is the one cluster of a test binary that asks for it.
var shared struct {
	once sync.Once
	c    *Cluster
	tb   *processTB
	err  error
}

// Shared returns the test binary's shared cluster, started on first use
// (about a second, mostly initdb) and stopped by StopShared, which the
// package's TestMain calls. Tests that share it keep apart by namespace.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() {
		shared.tb = &processTB{}
		defer func() {
			if r := recover(); r != nil {
				f, ok := r.(fatal)
				if !ok {
					panic(r)
				}
				shared.err = f
			}
		}()
		shared.c = Start(shared.tb)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.c
}

// StopShared stops the shared cluster, if it started, and removes its
// files.
func StopShared() {
	if shared.tb != nil {
		shared.tb.cleanup()
	}
}

// processTB is the testing.TB of the shared cluster, which outlives every
// test: its cleanups run at StopShared, and a fatal error panics (Shared
// recovers it). Only the methods Start calls are implemented.
type processTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	dirs     []string
}

type fatal struct{ msg string }

func (f fatal) Error() string { return f.msg }

func (p *processTB) Helper()                           {}
func (p *processTB) Failed() bool                      { return false }
func (p *processTB) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (p *processTB) Error(args ...any)                 { fmt.Fprintln(os.Stderr, args...) }
func (p *processTB) Fatal(args ...any)                 { panic(fatal{fmt.Sprint(args...)}) }
func (p *processTB) Fatalf(format string, args ...any) { panic(fatal{fmt.Sprintf(format, args...)}) }

func (p *processTB) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}

func (p *processTB) TempDir() string {
	dir, err := os.MkdirTemp("", "sessionstore-pg-")
	if err != nil {
		p.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dirs = append(p.dirs, dir)
	return dir
}

func (p *processTB) cleanup() {
	p.mu.Lock()
	cs, dirs := p.cleanups, p.dirs
	p.cleanups, p.dirs = nil, nil
	p.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	for _, d := range dirs {
		os.RemoveAll(d)
	}
}
