// Package sessionstore is the vocabulary that every sessionstore backend
// shares: the stored session (AuthObject), the Store interface, the error
// values, and TokenSource, which refreshes a session once for every process
// (and, with etcd, every host) that shares it.
//
// It is the Go form of the "session manager" of Podio-style Platform SDKs:
// an object whose get(authType) is [Store.Get] and whose set(authObject,
// authType) is [Store.Set], so that a program neither authenticates on every
// run nor trips the provider's rate limits.
//
// # Backends
//
// Package filestore keeps sessions on one host, one age-encrypted file per
// auth type, shared between processes through file locks. Package
// etcdstore keeps them in etcd v3 for a fleet of hosts, with the same
// encryption: one record per auth type under a prefix, locked across hosts
// on etcd leases, each write fenced on its lock and on the record's
// revision. Package memstore keeps them in memory,
// for the tests of programs that use sessionstore. Package
// sessionstoretest holds the conformance suite that every backend passes
// and a local OAuth provider for tests. Backends never import each other;
// a program links only the ones it imports.
//
// # Auth types
//
// An auth type names one session: any non-empty UTF-8 string of at most 200
// bytes without NUL ("server", "client", "password", "app:12345",
// "user@example.com"). See [ValidateAuthType].
//
// # Errors
//
// Every backend returns errors that wrap the values below (test with
// errors.Is) and name the file or key they concern. No error, no fmt verb,
// no log/slog handler and no encoding/json output ever carries a token:
// AuthObject prints and marshals its tokens as "[redacted]".
//
// # Refreshing
//
// [TokenSource] returns an oauth2.TokenSource over any Store. A valid token
// comes from memory; an expired one is refreshed under the record's lock
// after reading the record again, so that when several processes find it
// expired at once, one refreshes and the others use its token: a rotating
// refresh token is used exactly once. A token counts as expired
// [WithExpirySkew] (default 10 s) before its expiry, or half its lifetime
// before if that is shorter, its lifetime counting from when the token
// source first saw it: a 1 h token is refreshed 10 s before it expires, a
// 10 s token 5 s before.
package sessionstore
