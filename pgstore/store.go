package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/keys"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// A Store keeps sealed sessions in PostgreSQL, one row per auth type of
// its namespace. It implements sessionstore.Store (Get, Set, Update,
// Delete, List, Close). It is safe for concurrent use by goroutines and,
// through lease rows and fenced writes, by processes on any number of
// hosts.
type Store struct {
	*protocol.Store
	ns string
}

var _ sessionstore.Store = (*Store)(nil)

// Open opens the store of namespace (a name of the caller's choice, such
// as "prod"; several namespaces share the tables) on pool, which the
// caller owns and closes after the Store. It creates the tables if they
// are missing, publishes the Store's heartbeat, and opens its listening
// connection (a connection of its own, outside the pool; none
// WithoutListen). It reads no record. Without WithKeyFile or WithKeyring
// it uses the key file named by $SESSIONSTORE_KEY_FILE, else
// $CREDENTIALS_DIRECTORY/sessionstore.key.
func Open(ctx context.Context, pool *pgxpool.Pool, namespace string, opts ...Option) (*Store, error) {
	o := newOptions(opts)
	if err := check(pool, namespace, o); err != nil {
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	if err := ensureSchema(ctx, pool, o.schema); err != nil {
		return nil, err
	}
	o.keys.Pkg = "pgstore"
	k, err := keys.New(o.keys)
	if err != nil {
		return nil, err
	}
	b := newBackend(pool, o.schema, namespace, o)
	ps, err := protocol.New(ctx, protocol.Config{Pkg: "pgstore", Namespace: namespace, Backend: b, Keys: k,
		Log: o.keys.Log, Now: o.now, MaxStaleness: o.maxStaleness})
	if err != nil {
		return nil, err
	}
	return &Store{Store: ps, ns: namespace}, nil
}

// Namespace returns the store's namespace.
func (s *Store) Namespace() string { return s.ns }

// Watching reports whether the Store currently serves values from its
// cache: its listening connection is up and heard from the server within
// WithMaxStaleness.
func (s *Store) Watching() bool { return s.Store.Watching() }

// maxNamespace bounds a namespace's length, as an auth type's.
const maxNamespace = 200

func check(pool *pgxpool.Pool, namespace string, o options) error {
	switch {
	case pool == nil:
		return errors.New("no pool")
	case namespace == "" || len(namespace) > maxNamespace:
		return fmt.Errorf("namespace %q: give the service its own, of 1 to %d bytes, such as \"prod\"", namespace, maxNamespace)
	case o.schema == "":
		return errors.New("the schema is empty")
	case o.lockTTL <= 0 || o.maxStaleness <= 0:
		return errors.New("lock TTL and maximum staleness must be positive")
	}
	return nil
}

// A Host is the heartbeat of one open Store, a row of the hosts table
// that lives for the lock TTL and is renewed every two seconds: it
// disappears when the Store closes or, after the TTL, when its process
// dies. It carries nothing secret.
type Host = protocol.Host

// RecordStatus describes one record, as Check, Promote and Retire see it:
// Store is the namespace, Location the record's row. It never holds a
// token.
type RecordStatus = protocol.RecordStatus

// A Record is one record as ReadRecords reads it: its status, as Check
// reports it, and the session it holds when it opens (Err nil).
type Record = protocol.Record

// Hosts returns the heartbeats of the Stores open on namespace: one per
// live Store, sorted by host and pid.
func Hosts(ctx context.Context, pool *pgxpool.Pool, namespace string, opts ...Option) ([]Host, error) {
	o := newOptions(opts)
	if err := check(pool, namespace, o); err != nil {
		return nil, fmt.Errorf("pgstore: hosts: %w", err)
	}
	return hosts(ctx, pool, tablesIn(o.schema), namespace)
}

// fleet is what the staged steps and the readers need of namespace.
func fleet(pool *pgxpool.Pool, namespace string, opts []Option) (*protocol.Fleet, error) {
	o := newOptions(opts)
	if err := check(pool, namespace, o); err != nil {
		return nil, err
	}
	t := tablesIn(o.schema)
	return &protocol.Fleet{
		Pkg:       "pgstore",
		Namespace: namespace,
		Where:     func(name string) string { return where(t, namespace, name) },
		ReadAll:   func(ctx context.Context) ([]protocol.Raw, error) { return readAll(ctx, pool, t, namespace) },
		Hosts:     func(ctx context.Context) ([]Host, error) { return hosts(ctx, pool, t, namespace) },
		Open: func(ctx context.Context, keyFile string, pass func() (string, error), id crypto.KeyIdentity) (*protocol.Store, error) {
			s, err := Open(ctx, pool, namespace, append(opts, WithKeyFile(keyFile), WithPassphrase(pass), WithKeyIdentity(id.File), WithPluginUI(id.UI))...)
			if err != nil {
				return nil, err
			}
			return s.Store, nil
		},
	}, nil
}

// ReadRecords reads every record of namespace and opens it with ring, for
// programs that only look, such as an operator's listing. Unlike Open it
// writes no heartbeat and holds no connection, so it never appears among
// the live Hosts that a rotation checks; it changes nothing. A record that
// does not open is returned with Err set, never skipped. The records are
// sorted by auth type.
func ReadRecords(ctx context.Context, pool *pgxpool.Pool, namespace string, ring *crypto.Keyring, opts ...Option) ([]Record, error) {
	f, err := fleet(pool, namespace, opts)
	if err != nil {
		return nil, fmt.Errorf("pgstore: read: %w", err)
	}
	return f.ReadRecords(ctx, ring)
}

// ReadRecord is ReadRecords for the record of authType alone. A missing
// record is an error wrapping sessionstore.ErrNotFound; one that does not
// open is returned with Err set.
func ReadRecord(ctx context.Context, pool *pgxpool.Pool, namespace string, ring *crypto.Keyring, authType string, opts ...Option) (Record, error) {
	f, err := fleet(pool, namespace, opts)
	if err != nil {
		return Record{}, fmt.Errorf("pgstore: read: %w", err)
	}
	if err := sessionstore.ValidateAuthType(authType); err != nil {
		return Record{}, err
	}
	raw, err := readRaw(ctx, pool, tablesIn(newOptions(opts).schema), namespace, authType)
	if err != nil {
		return Record{}, err
	}
	if raw.Data == nil {
		return Record{}, fmt.Errorf("pgstore: %s: %w", f.Where(authType), sessionstore.ErrNotFound)
	}
	return f.OpenRecord(raw, ring), nil
}

// Remove deletes the session stored under authType in namespace, without
// a key and without a Store: deleting needs write access to the table, not
// the key that sealed the record. It takes the record's lock, as
// Store.Delete does, waiting for it until ctx is done, and deletes the row
// fenced on that lock and on the record's version. It writes no heartbeat.
// Unlike Store.Delete, Remove reports a missing record: an error wrapping
// sessionstore.ErrNotFound.
func Remove(ctx context.Context, pool *pgxpool.Pool, namespace, authType string, opts ...Option) error {
	o := newOptions(opts)
	if err := check(pool, namespace, o); err != nil {
		return fmt.Errorf("pgstore: remove: %w", err)
	}
	if err := sessionstore.ValidateAuthType(authType); err != nil {
		return err
	}
	b := newBackend(pool, o.schema, namespace, o)
	b.noListen = true // no feed: waiters poll
	l, err := b.Lock(ctx, authType)
	if err != nil {
		return noTables(tablesIn(o.schema), err)
	}
	defer l.Unlock()
	raw, err := b.Read(ctx, authType)
	if err != nil {
		return err
	}
	if raw.Data == nil {
		return fmt.Errorf("pgstore: remove %s: %w", b.Where(authType), sessionstore.ErrNotFound)
	}
	_, err = l.Commit(ctx, raw.Ver, nil)
	return err
}
