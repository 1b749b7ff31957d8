package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/internal/cliutil"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// A backend is the store the commands work on: a directory, an etcd
// prefix or a PostgreSQL namespace. On a fleet, only import, and token
// when it refreshes, open a Store: no other command is a live host.
type backend struct {
	*cliutil.Backend
	o          *options
	ring       *crypto.Keyring    // ls, show; token on a fleet
	store      sessionstore.Store // opened on first write
	passphrase func() (string, error)
}

var errExists = errors.New("a session is already stored under this name")

// openBackend opens o's store for o.cmd. Only import creates a directory:
// reading from a mistyped one is an error, not an empty store.
func openBackend(ctx context.Context, o *options, pg bool) (*backend, error) {
	b := &backend{o: o, passphrase: cliutil.Passphrase(o.passFile)}
	if o.dir != "" && o.cmd != "import" {
		fi, err := os.Stat(o.dir)
		if err != nil {
			return nil, fmt.Errorf("store directory %s: %w", strconv.Quote(o.dir), cliutil.PathErrCause(err))
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("store directory %s is not a directory", strconv.Quote(o.dir))
		}
	}
	var err error
	if o.cmd == "ls" || o.cmd == "show" || o.cmd == "token" && o.dir == "" {
		if b.ring, err = crypto.LoadKeyringWithIdentity(o.keyFile, b.passphrase, crypto.KeyIdentity{File: o.identity}); err != nil {
			return nil, err
		}
	}
	if o.dir != "" {
		b.Backend = dirBackend(o.dir)
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cliutil.DialTimeout)
		defer cancel()
		if b.Backend, err = o.fleet.Dial(ctx, pg, o.Stderr); err != nil {
			return nil, err
		}
	}
	if o.cmd == "import" {
		if _, err := b.open(ctx); err != nil {
			b.close()
			if o.dir == "" && ctx.Err() != nil {
				return nil, b.Unanswered(err)
			}
			return nil, err
		}
	}
	return b, nil
}

// dirBackend is the store directory dir, through filestore.
func dirBackend(dir string) *cliutil.Backend {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return &cliutil.Backend{
		Where: "in " + strconv.Quote(abs),
		ReadRecords: func(ctx context.Context, ring *crypto.Keyring) ([]protocol.Record, error) {
			return filestore.ReadRecords(ctx, dir, ring)
		},
		ReadRecord: func(ctx context.Context, ring *crypto.Keyring, name string) (protocol.Record, error) {
			return filestore.ReadRecord(ctx, dir, ring, name)
		},
		Remove: func(ctx context.Context, name string) error { return filestore.Remove(ctx, dir, name) },
		Open: func(_ context.Context, keyFile string, passphrase func() (string, error), identity string) (sessionstore.Store, error) {
			return filestore.Open(dir, filestore.WithKeyFile(keyFile), filestore.WithoutWatcher(),
				filestore.WithKeyIdentity(identity), filestore.WithPassphrase(passphrase))
		},
		Close: func() {},
	}
}

// open opens the Store that writes, once.
func (b *backend) open(ctx context.Context) (sessionstore.Store, error) {
	if b.store == nil {
		s, err := b.Open(ctx, b.o.keyFile, b.passphrase, b.o.identity)
		if err != nil {
			return nil, err
		}
		b.store = s
	}
	return b.store, nil
}

func (b *backend) close() {
	if b.store != nil {
		b.store.Close()
	}
	b.Close()
}

// found is err, or for sessionstore.ErrNotFound an error that names the
// session and the store.
func (b *backend) found(name string, err error) error {
	if errors.Is(err, sessionstore.ErrNotFound) {
		return fmt.Errorf("no session %s %s", strconv.Quote(name), b.Where)
	}
	return err
}

// put stores a session under name, which importOne has validated. Unless
// replace, an existing record (even one that does not open) is left alone:
// errExists, or why it does not open.
func (b *backend) put(ctx context.Context, name string, a sessionstore.AuthObject, replace bool) error {
	s, err := b.open(ctx)
	if err != nil {
		return err
	}
	if replace {
		return s.Set(ctx, name, a)
	}
	_, err = s.Update(ctx, name, func(_ sessionstore.AuthObject, exists bool) (sessionstore.AuthObject, error) {
		if exists {
			return sessionstore.AuthObject{}, errExists
		}
		return a, nil
	})
	return err
}
