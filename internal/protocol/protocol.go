// Package protocol is the one implementation of what sessionstore's fleet
// backends (etcdstore, pgstore) do with their storage: the locked
// read-modify-write with its fence and the recognition of one's own write
// after an ambiguous error, the record cache and its staleness rule, the
// key file's reload, heartbeats and the staged rotation. A backend supplies
// only its storage primitives, the Backend interface: read a record and its
// version, take a record's lock, a fenced write, list, a change feed, a
// heartbeat.
//
// Sealing and opening records, the write rules and the keyring are shared
// with filestore through the packages below this one (crypto, decide,
// keys).
package protocol

import (
	"context"
	"errors"
	"slices"
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

	// Read reads name's record (Data nil if there is none), a
	// linearizable read.
	Read(ctx context.Context, name string) (Raw, error)

	// ReadAll reads every record of the namespace, skipping what is not a
	// record of this store.
	ReadAll(ctx context.Context) ([]Raw, error)

	// Names lists the auth types of the namespace's records.
	Names(ctx context.Context) ([]string, error)

	// Lock takes name's lock, across processes and hosts, waiting until
	// ctx is done. Within one Store, the protocol holds a lock of its own
	// per name first: Lock is never called twice at once for one name.
	Lock(ctx context.Context, name string) (Lock, error)

	// Watch runs one generation of the change feed (see Feed) until it
	// fails or ctx ends.
	Watch(ctx context.Context, f *Feed) error

	// Heartbeat publishes h for the Store, keeping its lease alive if the
	// backend's leases need it. It is called when the Store opens, every
	// HeartbeatEvery, and when its keys change.
	Heartbeat(ctx context.Context, h Host) error

	// Close releases what the backend holds for the Store (its lease).
	Close() error
}

// A Lock is a record's lock, held.
type Lock interface {
	// Commit writes data (nil: deletes the record) if the record's
	// version is still ver and the lock is still held, and releases the
	// lock. It returns the record's new version. A write refused because
	// the lock's lease ended wraps sessionstore.ErrLockLost; one whose
	// outcome is unknown (the connection lost around the commit) wraps
	// ErrAmbiguous. Either way no retry is left to the caller.
	Commit(ctx context.Context, ver int64, data []byte) (int64, error)

	// Unlock releases the lock if Commit did not; it may be called after
	// Commit and more than once.
	Unlock()
}

// A Historian is a Lock whose backend keeps a record's past versions:
// after an ambiguous Commit, it tells whether data was written since the
// lock was taken, even if another host wrote after it.
type Historian interface {
	AppliedSince(ctx context.Context, name string, data []byte) (ver int64, applied bool, err error)
}

// ErrAmbiguous is wrapped by a Commit whose outcome is unknown (see
// Ambiguous).
var ErrAmbiguous = errors.New("outcome unknown")

// Ambiguous is the error of a Commit whose outcome cause (a timeout, a
// lost connection) left unknown: it wraps ErrAmbiguous and cause, and
// says what cause says.
func Ambiguous(cause error) error { return ambiguous{cause} }

type ambiguous struct{ cause error }

func (a ambiguous) Error() string   { return a.cause.Error() }
func (a ambiguous) Unwrap() []error { return []error{ErrAmbiguous, a.cause} }

// HeartbeatEvery is how often a Store rereads its key file and renews its
// heartbeat.
const HeartbeatEvery = 2 * time.Second

// A Host is the heartbeat of one open Store: it carries nothing secret.
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

// Holds reports whether the host's keyring has the identity whose
// fingerprint is fp.
func (h Host) Holds(fp string) bool { return slices.Contains(h.Keys, fp) }

// SortHosts sorts hosts by host name and pid.
func SortHosts(hosts []Host) {
	slices.SortFunc(hosts, func(a, b Host) int {
		if a.Host != b.Host {
			if a.Host < b.Host {
				return -1
			}
			return 1
		}
		return a.PID - b.PID
	})
}
