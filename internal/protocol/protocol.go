// Package protocol is the fleet backends' (etcdstore, pgstore) one
// implementation of sessionstore's protocol: the locked, fenced write and
// the recognition of one's own ambiguous write, the cache and its
// staleness rule, the key file's reload, heartbeats and the staged
// rotation. A backend supplies only its storage primitives, Backend.
package protocol

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// A Raw is a record as a backend stores it.
type Raw struct {
	Name string // the auth type
	Data []byte // the sealed record; nil if absent
	Ver  int64  // the record's version, which changes with every write; 0 if absent
}

// A Backend is the storage of one namespace, as one Store holds it. It is
// safe for concurrent use.
type Backend interface {
	// Where names name's record in errors: its etcd key, its row.
	Where(name string) string

	// Read reads name's record (Data nil if there is none), linearizably.
	Read(ctx context.Context, name string) (Raw, error)

	// ReadAll reads every record of the namespace, skipping what is not a
	// record of this store.
	ReadAll(ctx context.Context) ([]Raw, error)

	// Names lists the auth types of the namespace's records.
	Names(ctx context.Context) ([]string, error)

	// Lock takes name's lock across hosts, waiting until ctx is done. A
	// Store never calls it twice at once for one name.
	Lock(ctx context.Context, name string) (Lock, error)

	// Watch runs one generation of the change feed (see Feed) until it
	// fails or ctx ends.
	Watch(ctx context.Context, f *Feed) error

	// Heartbeat publishes h (and keeps the Store's lease alive): at Open,
	// every HeartbeatEvery and when the keys change.
	Heartbeat(ctx context.Context, h Host) error

	// Close releases what the backend holds for the Store (its lease).
	Close() error
}

// A Lock is a record's lock, held.
type Lock interface {
	// Commit writes data (nil: deletes the record) if the record's
	// version is still ver and the lock still held, releases the lock and
	// returns the new version. A lost lock wraps sessionstore.ErrLockLost,
	// an unknown outcome ErrAmbiguous (see Ambiguous).
	Commit(ctx context.Context, ver int64, data []byte) (int64, error)

	// Unlock releases the lock if Commit did not; it may be called again.
	Unlock()
}

// A Historian is a Lock whose backend keeps past versions: it tells
// whether data was written since the lock was taken, even if overwritten.
type Historian interface {
	AppliedSince(ctx context.Context, name string, data []byte) (ver int64, applied bool, err error)
}

// ErrAmbiguous is wrapped by a Commit whose outcome is unknown.
var ErrAmbiguous = errors.New("outcome unknown")

// Ambiguous wraps ErrAmbiguous and cause (a timeout, a lost connection)
// and says what cause says.
func Ambiguous(cause error) error { return ambiguous{cause} }

type ambiguous struct{ cause error }

func (a ambiguous) Error() string   { return a.cause.Error() }
func (a ambiguous) Unwrap() []error { return []error{ErrAmbiguous, a.cause} }

// HeartbeatEvery is how often a Store rereads its key file and renews its
// heartbeat.
const HeartbeatEvery = 2 * time.Second

// A Host is the heartbeat of one open Store; nothing in it is secret.
type Host struct {
	ID   string    `json:"-"`    // the backend's id of the heartbeat (an etcd lease, a row)
	Host string    `json:"host"` // os.Hostname
	PID  int       `json:"pid"`
	Keys []string  `json:"keys"` // fingerprints of the keyring's identities, the primary first (crypto.Keyring.Fingerprint)
	Time time.Time `json:"time"` // when it was written
}

// Primary returns the fingerprint of the host's primary key, or "".
func (h Host) Primary() string {
	if len(h.Keys) == 0 {
		return ""
	}
	return h.Keys[0]
}

// Holds reports whether the host holds the identity of fingerprint fp.
func (h Host) Holds(fp string) bool { return slices.Contains(h.Keys, fp) }

// SortHosts sorts hosts by host name and pid.
func SortHosts(hosts []Host) {
	slices.SortFunc(hosts, func(a, b Host) int { return cmp.Or(strings.Compare(a.Host, b.Host), a.PID-b.PID) })
}
