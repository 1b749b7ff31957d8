// Package etcdstore is the fleet backend of sessionstore: it keeps OAuth
// sessions in etcd v3, one age-encrypted record per auth type under a
// prefix, shared by every goroutine, process and host that opens that
// prefix; etcd's operators and backups see only ciphertext. A *Store is a
// sessionstore.Store: refresh through it with sessionstore.TokenSource, and
// a fleet refreshes a token once.
//
//	<prefix>/records/<stem>         one sealed record (the format of a filestore file)
//	<prefix>/locks/<stem>/<lease>   the record's concurrency.Mutex
//	<prefix>/hosts/<lease>          the heartbeat of an open Store
//
// A stem is the auth type with every byte outside [a-z0-9._-] as %xx. A
// record copied to another name or prefix does not open
// (sessionstore.ErrTampered); one whose sequence number goes back while a
// Store watches it is sessionstore.ErrRollback for that Store.
//
// Writers take the record's lock on the Store's lease (WithLockTTL) and
// write fenced on that lock and on the record's revision: a write whose
// lease ended meanwhile is not applied (sessionstore.ErrLockLost), and one
// whose outcome neither etcd nor the record's history can establish is
// sessionstore.ErrOutcomeUnknown. Readers never lock: a cached value is
// served only while the Store's watch is healthy and etcd answered within
// WithMaxStaleness; otherwise Get reads etcd.
//
// Every host uses the same key file; [Stage], [Promote] and [Retire]
// rotate it across hosts, checking [Hosts] before each step.
//
// The caller owns the etcd client and closes it after the Store;
// [ClientLogger] sends the client's messages to a log/slog logger. Errors
// wrap the sentinels of package sessionstore, name the etcd key they
// concern and never carry a secret.
package etcdstore
