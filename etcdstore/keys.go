package etcdstore

// countDerivation counts a key derivation (scrypt, for a
// passphrase-protected key file) made while this Store holds a record
// lock: never, by design (see lockCurrentKeys).
func (s *Store) countDerivation() {
	if s.locksHeld.Load() > 0 {
		s.derivedUnderLock.Add(1)
	}
}
