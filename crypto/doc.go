// Package crypto is sessionstore's keys: the Keyring and its key file, a
// standard age identity file (as age-keygen writes it) whose first identity
// is the primary, which new records are sealed to; the others are
// decrypt-only. A key file may itself be sealed to a passphrase or to age
// (plugin) recipients. No error quotes a key file, and a Keyring never
// prints a secret key.
package crypto
