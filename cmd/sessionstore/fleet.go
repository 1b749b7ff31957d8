package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// A fleet is a store that many hosts share: an etcd prefix or a
// PostgreSQL namespace, reached through its backend's package-level
// functions, which open no Store.
type fleet interface {
	ReadRecords(ctx context.Context, ring *crypto.Keyring) ([]protocol.Record, error)
	ReadRecord(ctx context.Context, ring *crypto.Keyring, name string) (protocol.Record, error)
	Remove(ctx context.Context, name string) error
	// Open opens the Store that writes: a host while it is open.
	Open(ctx context.Context, keyFile string, passphrase func() (string, error), identity string) (sessionstore.Store, error)
	// where says where the records are, quoted: `under "/p"`.
	where() string
	// unanswered is the error of a fleet that did not answer in time.
	unanswered(err error) error
	Close()
}

// fleetBackend is a fleet as the commands see it. ls, show and token read
// it with ReadRecords and ReadRecord and rm deletes with Remove: none of
// them opens a Store, so none writes a heartbeat nor appears among the live
// hosts that rekey checks. Only import, which writes sessions sealed to
// its keys, and token when it refreshes, open a Store.
type fleetBackend struct {
	f     fleet
	ring  *crypto.Keyring    // ls, show and token
	store sessionstore.Store // import; token once it refreshes

	keyFile    string // for the Store token opens
	passphrase func() (string, error)
	identity   string // -identity, for a key file sealed to age recipients
}

// openFleet connects to a fleet for cmd with connect, which checks that
// it answers (within ctx). ls, show and token load the key file first,
// import opens the store, rm needs no key.
func openFleet(ctx context.Context, cmd, keyFile string, passphrase func() (string, error), identity string,
	connect func(context.Context) (fleet, error)) (*fleetBackend, error) {
	b := &fleetBackend{keyFile: keyFile, passphrase: passphrase, identity: identity}
	if cmd == "ls" || cmd == "show" || cmd == "token" {
		var err error
		if b.ring, err = crypto.LoadKeyringWithIdentity(keyFile, passphrase, crypto.KeyIdentity{File: identity}); err != nil {
			return nil, err
		}
	}
	f, err := connect(ctx)
	if err != nil {
		return nil, err
	}
	b.f = f
	if cmd == "import" {
		if err := b.openStore(ctx); err != nil {
			f.Close()
			if ctx.Err() != nil {
				return nil, f.unanswered(err)
			}
			return nil, err
		}
	}
	return b, nil
}

// openStore opens the Store that writes, once.
func (b *fleetBackend) openStore(ctx context.Context) error {
	if b.store != nil {
		return nil
	}
	s, err := b.f.Open(ctx, b.keyFile, b.passphrase, b.identity)
	if err != nil {
		return err
	}
	b.store = s
	return nil
}

func (b *fleetBackend) Close() error {
	var err error
	if b.store != nil {
		err = b.store.Close()
	}
	b.f.Close()
	return err
}

func (b *fleetBackend) List(ctx context.Context) ([]record, error) {
	return recordsOf(b.f.ReadRecords(ctx, b.ring))
}

// recordOf is what the commands know of r.
func recordOf(r protocol.Record) record {
	return record{Name: r.AuthType, Key: r.Key, PublicKey: r.PublicKey, Seq: r.Seq, Written: r.Written, Auth: r.Auth, Err: r.Err}
}

// recordsOf is what a backend's ReadRecords returned, as the commands see it.
func recordsOf(recs []protocol.Record, err error) ([]record, error) {
	if err != nil {
		return nil, err
	}
	out := make([]record, len(recs))
	for i, r := range recs {
		out[i] = recordOf(r)
	}
	return out, nil
}

// oneRecord is what a backend's ReadRecord returned, as the commands see
// it: notFound for a record that is not there.
func oneRecord(r protocol.Record, err, notFound error) (record, error) {
	if errors.Is(err, sessionstore.ErrNotFound) {
		return record{}, notFound
	}
	if err != nil {
		return record{}, err
	}
	return recordOf(r), nil
}

func (b *fleetBackend) Get(ctx context.Context, name string) (record, error) {
	r, err := b.f.ReadRecord(ctx, b.ring, name)
	return oneRecord(r, err, b.notFound(name))
}

func (b *fleetBackend) notFound(name string) error {
	return fmt.Errorf("%w %q %s", errNoSession, name, b.f.where())
}

func (b *fleetBackend) Delete(ctx context.Context, name string) error {
	err := b.f.Remove(ctx, name)
	if errors.Is(err, sessionstore.ErrNotFound) {
		return b.notFound(name)
	}
	return err
}

func (b *fleetBackend) Put(ctx context.Context, name string, a sessionstore.AuthObject, replace bool) error {
	return put(ctx, b.store, name, a, replace)
}
