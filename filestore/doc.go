// Package filestore is the one-host backend of sessionstore: it keeps OAuth
// sessions on disk, one age-encrypted file per auth type, shared safely
// between the goroutines and processes of one host, with keys that can be
// rotated while those processes run. A *Store is a sessionstore.Store;
// refresh through it with sessionstore.TokenSource.
//
// # Layout
//
//	<dir>/                 0700
//	  server.age           one sealed record (an age file), 0600
//	  server.lock          flock target with the last writer's note, 0600, never deleted
//	  .server.tmp-0        a write in progress (removed on success or failure)
//
// An auth type is any non-empty UTF-8 string of at most 200 bytes without
// NUL. Its file stem is the name with every byte outside [a-z0-9._-]
// written as %xx, and a leading "." as %2e: no name can reach outside the
// directory, look like a temp file, or collide with another on a
// case-insensitive file system.
//
// # Concurrency
//
// Writers (Set, Update, Delete) take the record's lock file, read the
// current record, write a temp file, fsync it, rename it over the record and
// fsync the directory. Update runs its function under that lock. A Set
// encrypts before it takes the lock (again under it, if the keys or the
// record moved on meanwhile), and does not decrypt the record it replaces
// when the lock file's note, left by the last writer, vouches for its bytes
// (the digest, sequence number and key fingerprint a Set needs). The temp
// file's name is fixed per record: only the lock holder writes it, so a
// leftover from a crashed writer is removed by the next writer in O(1).
//
// Readers never lock: rename makes every record whole. A Get serves its
// value from memory once an fsnotify watcher on the directory vouches for
// it; the watcher starts on the first Get that finds a cached entry, so a
// short-lived process never pays for it, and Close does not wait for it.
// Until then, and where the directory cannot be watched (or
// [WithoutWatcher]), Get validates the cached entry against the bytes of
// the file. A record another process replaced is decrypted in the
// background as soon as the watcher hears of it. Each process uses one
// inotify instance, whatever its number of Stores.
//
// # Keys
//
// The key file is a standard age identity file; see package crypto. The
// Store rereads it under the record lock before every write, so it never
// seals to a retired key, and once more when a record does not open (a
// rotation may just have happened). [Rotate] rotates the key while other
// processes keep working; cmd/rekey is its command line.
//
// # Errors
//
// Errors wrap the sentinels of package sessionstore (test with errors.Is),
// name the file they concern and never carry a secret.
package filestore
