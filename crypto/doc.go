// Package crypto is sessionstore's key handling and record sealing: the
// Keyring (age identities from a standard age identity file) and the
// sealing and opening of one record. It knows nothing of directories,
// locks or caches; package filestore builds the store on top of it.
//
// # Key management
//
// A key file is a standard age identity file, as written by age-keygen: one
// AGE-SECRET-KEY-1… (X25519) or AGE-SECRET-KEY-PQ-1… (ML-KEM-768+X25519
// hybrid) per line, with # comments. The first identity is the primary:
// new records are encrypted to its recipient. The others are decrypt-only;
// they are the old keys kept while a rotation is in progress. Extra
// recipients (for example an offline break-glass key) live next to the key
// file in "<key file>.recipients", in age's recipients-file format; every
// record is sealed to them too. They must be of the primary's kind, since age
// cannot mix post-quantum and classic recipients in one file.
//
// # Record authenticity
//
// age does not authenticate the sender: anyone who knows the public
// recipient can produce a file that decrypts. A sealed record therefore
// carries an HMAC-SHA-256 under a key derived (HKDF-SHA-256) from the secret
// of the identity it was sealed for, binding the format version, the auth
// type, the sequence number, the write time and the auth object. Open
// verifies it with the identity that opened the record, so records not yet
// resealed during a rotation still verify.
//
// # Compatibility
//
// Every record format version ever written stays readable: testdata/ holds a
// golden record of each, opened by the tests. The current version is
// FormatVersion.
package crypto
