// Package pgstore is the database backend of sessionstore: it keeps OAuth
// sessions in PostgreSQL, one age-encrypted row per auth type, shared
// safely between the goroutines, processes and hosts that open the same
// namespace, with the same encryption as packages filestore and etcdstore:
// the database, its logs and its backups see only ciphertext. A *Store is
// a sessionstore.Store; refresh through it with sessionstore.TokenSource,
// and a fleet refreshes a token once.
//
// # Tables
//
// Open creates them in the schema (WithSchema, default "sessionstore")
// when they are missing; a role that may not create them gets an error
// with the SQL to run.
//
//	records(namespace, name, record bytea, version)   the sealed record (the age format of a file record)
//	locks(namespace, name, holder, generation, expires_at)   a lease row per locked record
//	hosts(namespace, id, host, pid, fingerprints, written, expires_at)   heartbeats of open Stores
//
// A record binds its namespace and its auth type: a row copied to another
// name or namespace does not open (sessionstore.ErrTampered); an older row
// restored over a newer one is sessionstore.ErrRollback for every Store
// that saw the newer one.
//
// # Concurrency
//
// A writer (Set, Update, Delete) takes the record's lease row, whose expiry
// the server's clock judges and which is renewed while Update's function
// runs; no transaction and no pool connection is held meanwhile. It then
// reads the record and writes it in one statement fenced on the record's
// version and on still holding the lease with its generation; the
// statement releases the lease and notifies the waiters. A holder whose
// lease lapsed (a process stalled past WithLockTTL) writes nothing and gets
// sessionstore.ErrLockLost. After an ambiguous error (the connection lost
// around the statement, a failover), the Store reads the record again and
// recognises its own write by its bytes.
//
// Readers never lock. Each Store listens on a connection of its own
// (LISTEN; the notifications name namespace, name and version, never a
// token) and serves a cached value only while that connection is up and
// was heard from within WithMaxStaleness (default 2 s); otherwise Get reads
// the row. WithoutListen, for transaction-pooling proxies, keeps no such
// connection: every Get reads the row and decrypts only a changed one.
//
// # Hosts and keys
//
// Every host uses the same key file. Each open Store keeps a heartbeat row
// with the fingerprints of its keys; [Hosts] lists them, and the staged
// rotation ([Stage], [Promote], [Retire]; rekey -stage, -postgres and
// -retire) checks them before each step, as package etcdstore does.
//
// # The pool
//
// The caller owns the pool (github.com/jackc/pgx/v5/pgxpool: TLS, password,
// multi-host failover with target_session_attrs=read-write) and closes it
// after the Store. Errors carry PostgreSQL's (errors.As finds a
// *pgconn.PgError), wrap the sentinels of package sessionstore, and never
// carry a secret.
package pgstore
