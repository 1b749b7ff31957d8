// Package crypto is sessionstore's keys: the Keyring and its key file, a
// standard age identity file (as age-keygen writes it) of X25519 or
// post-quantum hybrid identities. The first identity is the primary: new
// records are sealed to it; the others are decrypt-only (old keys during a
// rotation, or a staged new key). "<key file>.recipients", in age's
// recipients-file format, lists extra recipients of the primary's kind (a
// break-glass key). A key file may itself be an age file sealed to a
// passphrase or to age (plugin) recipients. No error quotes a key file,
// and a Keyring never prints a secret key.
package crypto
