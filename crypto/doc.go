// Package crypto is sessionstore's keys: the Keyring and its key file.
//
// A key file is a standard age identity file, as age-keygen writes it: one
// AGE-SECRET-KEY-1… (X25519) or AGE-SECRET-KEY-PQ-1… (ML-KEM-768+X25519
// hybrid) per line, with # comments. The first identity is the primary:
// new records are sealed to it. The others are decrypt-only (old keys
// during a rotation, or a staged new key). "<key file>.recipients", in
// age's recipients-file format, lists extra recipients of the primary's
// kind (a break-glass key) that every record is sealed to as well. A key
// file may itself be an age file sealed to a passphrase or to age (plugin)
// recipients. No error quotes a key file, and a Keyring never prints a
// secret key.
package crypto
