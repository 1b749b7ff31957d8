package protocol

import (
	"context"
	"runtime"
	"sync"
)

// Locks are in-process locks by name, honouring contexts. A name's entry
// lives while someone holds or waits for it. The zero value is ready to
// use; safe for concurrent use.
type Locks struct {
	mu sync.Mutex // guards m
	m  map[string]*nameLock
}

type nameLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters; guarded by Locks.mu
}

// Lock takes name's lock, waiting until ctx is done.
func (l *Locks) Lock(ctx context.Context, name string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*nameLock)
	}
	nl := l.m[name]
	if nl == nil {
		nl = &nameLock{ch: make(chan struct{}, 1)}
		l.m[name] = nl
	}
	nl.refs++
	l.mu.Unlock()
	select {
	case nl.ch <- struct{}{}:
		return func() {
			<-nl.ch
			if l.release(name, nl) {
				// A waiter now holds the lock, but it runs only when this
				// goroutine yields the processor: yield now, or a caller
				// that goes on to prepare its next write keeps it waiting.
				runtime.Gosched()
			}
		}, nil
	case <-ctx.Done():
		l.release(name, nl)
		return nil, ctx.Err()
	}
}

// release drops a reference to name's lock and reports whether others
// still wait for it.
func (l *Locks) release(name string, nl *nameLock) (waiters bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if nl.refs--; nl.refs == 0 {
		delete(l.m, name)
	}
	return nl.refs > 0
}
