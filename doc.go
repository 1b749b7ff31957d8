// Package sessionstore is the vocabulary every sessionstore backend
// shares: the stored session (AuthObject), the Store interface, the error
// values, and TokenSource, which refreshes a session once for every process
// and host that shares it.
//
// The backends: filestore (one host, a file per auth type), etcdstore and
// pgstore (a fleet of hosts), all age-encrypted, and memstore (in memory,
// for tests). Package sessionstoretest holds the conformance suite they
// pass and a local OAuth provider. A program links only the backends it
// imports.
//
// Errors wrap the values below (test with errors.Is) and name the file or
// key they concern. No error, fmt verb, log/slog handler or encoding/json
// output ever carries a token: AuthObject prints its tokens as
// "[redacted]".
package sessionstore
