package protocol

import (
	"context"
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
			l.release(name, nl)
		}, nil
	case <-ctx.Done():
		l.release(name, nl)
		return nil, ctx.Err()
	}
}

func (l *Locks) release(name string, nl *nameLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if nl.refs--; nl.refs == 0 {
		delete(l.m, name)
	}
}
