// Package etcdstore is the fleet backend of sessionstore: it keeps OAuth
// sessions in etcd v3, one age-encrypted record per auth type, shared
// safely between the goroutines, processes and hosts that open the same
// prefix, with the same encryption as package filestore, so that etcd's
// operators and backups see only ciphertext. A *Store is a
// sessionstore.Store; refresh through it with sessionstore.TokenSource, and
// a fleet refreshes a token once.
//
// # Layout
//
//	<prefix>/records/<stem>     one sealed record (the age format of a file record)
//	<prefix>/locks/<stem>/<lease>   concurrency.Mutex of that record
//	<prefix>/hosts/<lease>      heartbeat of an open Store, bound to its lease
//
// The stem of an auth type is its filestore file stem: every byte outside
// [a-z0-9._-] as %xx. A record binds its prefix and its auth type (record
// format version 2, see package crypto): one copied to another name or
// another prefix does not open (sessionstore.ErrTampered).
//
// # Concurrency
//
// Each Store holds one lease (WithLockTTL, default 15 s), kept alive by the
// client. Writers (Set, Update, Delete) take the record's in-process lock
// (two Mutexes on one lease would both "acquire"), then its etcd Mutex on
// that lease; read the record; and write it with a transaction fenced on the
// record's ModRevision and on the Mutex key still being theirs, which
// deletes that key too: the lock is released in the write's round trip. If the
// lease ended meanwhile (the process stalled past the TTL, and another host
// may have taken the lock and written), the write is not applied and
// returns sessionstore.ErrLockLost. A write whose outcome etcd leaves
// unknown (a timeout during a leader change) is tried again with the same
// fences; since the write's transaction also released the lock, the
// record's history back to the lock's revision tells whether an earlier
// attempt was applied: some version then holds exactly the bytes this
// Store sealed, whose age header is random.
//
// Readers never lock. Each Store watches <prefix>/records/ (with
// clientv3.WithRequireLeader) and asks etcd for a progress notification
// three times per WithMaxStaleness (default 2 s), and every 10 ms until
// the first answer of a new watch (etcd drops requests while it catches
// up: about 100 ms after a Store starts). A Get serves its value
// from memory only while that watch is healthy and etcd answered within
// the bound; on compaction, cancellation, loss of leader or silence it
// drops the whole cache, and the watch starts again from a fresh read.
// Meanwhile Get reads the record from etcd. A record whose sequence number
// goes back while a Store watches it is sessionstore.ErrRollback for that
// Store.
//
// # Hosts and keys
//
// Every host uses the same key file, deployed by the operator's usual
// means. Each open Store publishes a heartbeat with the fingerprints of its
// keys (primary first) and rereads its key file before each write and every
// two seconds. [Hosts] lists the heartbeats; a staged rotation ([Stage],
// [Promote], [Retire], what rekey -stage, -etcd and -retire run) checks them
// before each step, and [Check] reports which key opens each record.
//
// # The etcd client
//
// The caller owns the client (endpoints, TLS, user and password) and closes
// it after the Store. By default the client logs JSON to stderr; set
// clientv3.Config.Logger to [ClientLogger] to send its messages to a
// log/slog logger instead.
//
// # Errors
//
// Errors wrap the sentinels of package sessionstore (test with errors.Is),
// name the etcd key they concern and never carry a secret.
package etcdstore
