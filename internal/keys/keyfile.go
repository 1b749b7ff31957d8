package keys

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/gofrs/flock"

	"github.com/sessionstore/sessionstore/crypto"
)

// LockSuffix names the lock file of a key file, which every rotation of
// that key file takes, so that no two rotations interleave.
const LockSuffix = ".lock"

func lockOf(keyFile string) *flock.Flock {
	return flock.New(keyFile+LockSuffix, flock.SetFlag(lockFlag), flock.SetPermissions(0o600))
}

// LockFile takes keyFile's lock exclusively, waiting until ctx is done.
func LockFile(ctx context.Context, keyFile string) (unlock func(), err error) {
	lk := lockOf(keyFile)
	ok, err := lk.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil || !ok {
		lk.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("lock %s%s: %w", keyFile, LockSuffix, err)
	}
	return func() { lk.Unlock(); lk.Close() }, nil
}

// Load loads keyFile as crypto.LoadKeyringWithIdentity does, and returns
// the passphrase it was asked for ("" if none) for writing it back.
func Load(keyFile string, askPass func() (string, error), id crypto.KeyIdentity) (*crypto.Keyring, string, error) {
	var pass string
	ask := askPass
	if askPass != nil {
		ask = func() (p string, err error) {
			p, err = askPass()
			pass = p
			return p, err
		}
	}
	ring, err := crypto.LoadKeyringWithIdentity(keyFile, ask, id)
	return ring, pass, err
}

// RemoveTemp removes the temp key file that a rotation killed mid-write
// left next to keyFile (it holds secret keys), if no rotation is running
// now; otherwise it leaves it to the next rekey.
func RemoveTemp(keyFile string, log *slog.Logger) {
	tmp := crypto.TempKeyFile(keyFile)
	if _, err := os.Lstat(tmp); err != nil {
		return
	}
	lk := lockOf(keyFile)
	if ok, err := lk.TryLock(); err != nil || !ok {
		log.Warn("sessionstore: a temp key file is left from a killed rotation; the next rekey removes it", "file", tmp)
		return
	}
	defer lk.Unlock()
	if err := crypto.RemoveTempKeyFile(keyFile); err != nil {
		log.Warn("sessionstore: cannot remove a temp key file left from a killed rotation", "file", tmp, "err", err)
		return
	}
	log.Info("sessionstore: removed a temp key file left from a killed rotation", "file", tmp)
}
