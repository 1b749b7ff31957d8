package crypto

import "filippo.io/age"

// SetMaxKeyFileWorkFactor sets the highest scrypt work factor that
// DecryptKeyFile accepts and returns the previous one (tests: a fuzzed
// header must not make each run derive a key for seconds).
func SetMaxKeyFileWorkFactor(logN int) (old int) {
	old, maxKeyFileWorkFactor = maxKeyFileWorkFactor, logN
	return old
}

var IsEncryptedKeyFile = isEncryptedKeyFile

func EncryptKeyFile(plain []byte, passphrase string) ([]byte, error) {
	return protect(plain, passphrase, nil)
}

func SealKeyFile(plain []byte, rs []age.Recipient) ([]byte, error) { return protect(plain, "", rs) }
