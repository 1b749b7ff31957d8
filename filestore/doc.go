// Package filestore is the one-host backend of sessionstore: one
// age-encrypted file per auth type, shared safely between the goroutines
// and processes of one host, with keys that can be rotated while those
// processes run. A *Store is a sessionstore.Store.
//
//	<dir>/                 0700
//	  server.age           one sealed record (an age file), 0600
//	  server.lock          flock target with the last writer's note, 0600, never deleted
//	  .server.tmp-0        a write in progress
//
// An auth type is any non-empty UTF-8 string of at most 200 bytes without
// NUL. Its file stem is the name with every byte outside [a-z0-9._-]
// written as %xx, and a leading "." as %2e: no name reaches outside the
// directory, looks like a temp file, or collides with another on a
// case-insensitive file system.
//
// Writers (Set, Update, Delete) take the record's lock file and replace
// the record durably (temp file, fsync, rename, directory fsync); Update
// runs its function under that lock. Readers never lock. A Get serves a
// cached value without I/O while the process's fsnotify watcher vouches
// for it; otherwise (before the watcher is up, on a network file system,
// [WithoutWatcher]) it validates the value against the file.
//
// The Store rereads the key file under the record lock before every write,
// so it never seals to a retired key. [Rotate] rotates the key while other
// processes keep working; cmd/rekey is its command line.
//
// Errors wrap the sentinels of package sessionstore, name the file they
// concern and never carry a secret.
package filestore
