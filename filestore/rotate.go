package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/batch"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/fsutil"
	"github.com/sessionstore/sessionstore/internal/keys"
	"github.com/sessionstore/sessionstore/internal/protocol"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// RotateOptions configures Rotate.
type RotateOptions struct {
	// Kind is the new primary's kind; the zero value, crypto.SameKind,
	// keeps the current primary's. An interrupted rotation is finished
	// with the primary it made; asking for the other kind then is an
	// error that changes nothing.
	Kind crypto.Kind

	KeepOld bool // keep the old identities, decrypt-only, after rotating
	DryRun  bool // report what would change; change nothing
	Workers int  // records resealed in parallel; 0 means 1

	// Passphrase, for a passphrase-protected key file, is called once;
	// the rotated key file is protected with the same passphrase.
	Passphrase func() (string, error)

	// Identity, for a key file sealed to age recipients (plugins), opens
	// it; the rotated key file is sealed again to the recipients in
	// keyFile+crypto.SealedToSuffix.
	Identity crypto.KeyIdentity

	// Progress, if set, is called at each step (never concurrently).
	Progress func(RotateEvent)
}

// A RotateEvent reports the progress of a rotation.
type RotateEvent struct {
	Step  string // "key-written", "resealed", "verified", "retired"
	Done  int    // records done in this step
	Total int    // records in all
}

// RecordStatus describes one record, as Check and Rotate see it: Store is
// the directory, Location the record's file. It never holds a token.
type RecordStatus = protocol.RecordStatus

// A RotateReport says what Rotate did.
type RotateReport struct {
	NewPublicKey string         // the new primary's recipient
	Kind         crypto.Kind    // the new primary's kind
	OldKind      crypto.Kind    // the kind of the primary it replaces
	Records      []RecordStatus // every record, after the rotation
	Retired      int            // old identities removed from the key file
	Resumed      bool           // finished a rotation that a crash interrupted, with its new key
}

// ErrRotationIncomplete is returned (wrapped) by Rotate when some record
// could not be resealed: the old keys are kept, and the records named. It
// is the same value in every backend.
var ErrRotationIncomplete = protocol.ErrRotationIncomplete

// Rotate rotates the key in keyFile over every record in dirs, safely while
// other processes use them:
//
//  1. write the key file with a new primary first and the old identities
//     after it (atomic, 0600);
//  2. reseal each record to the new primary under the record's lock;
//  3. check that every record opens with the new primary alone;
//  4. unless KeepOld, rewrite the key file without the old identities.
//
// Before it changes anything, Rotate checks that every record opens with
// the keys on hand; if one does not, it returns ErrRotationIncomplete
// naming the records, and the key file is left byte for byte as it was. A
// crash at any step leaves every record readable; running Rotate again
// reuses the new primary the crashed run put first (Resumed), whatever its
// kind. Rotate holds keyFile+".lock", so rotations never interleave, and
// removes a temp key file a killed rotation left behind.
func Rotate(ctx context.Context, keyFile string, dirs []string, opts RotateOptions) (*RotateReport, error) {
	progress := opts.Progress
	if progress == nil {
		progress = func(RotateEvent) {}
	}
	dirs, err := storeDirs(dirs...)
	if err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	unlock, err := keys.LockFile(ctx, keyFile)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	defer unlock()
	if err := crypto.RemoveTempKeyFile(keyFile); err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	old, pass, err := keys.Load(keyFile, opts.Passphrase, opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	report := &RotateReport{OldKind: old.KindOf(0)}
	var next *crypto.Keyring
	if old.Rotating() {
		// A crashed run's new primary: records may be sealed to it
		// already, so it stays, and finishing with it adds no identity.
		if opts.Kind != crypto.SameKind && opts.Kind != old.KindOf(0) {
			return nil, fmt.Errorf("rotate: %s: an interrupted rotation to a new %s primary (%s) is not finished, and %s was asked for; nothing changed: "+
				"finish it first (run the rotation again without a kind: rekey without -pq), then rotate again to switch kinds",
				keyFile, old.KindOf(0), old.Fingerprint(0), opts.Kind)
		}
		next, report.Resumed = old, true
		if old.Len() > 1 {
			report.OldKind = old.KindOf(1)
		}
	} else {
		kind := opts.Kind
		if kind == crypto.SameKind {
			kind = old.KindOf(0)
		}
		id, err := crypto.GenerateIdentity(kind == crypto.PostQuantum)
		if err != nil {
			return nil, fmt.Errorf("rotate: %w", err)
		}
		if next, err = old.Rotate(id); err != nil {
			// Extra recipients of the other kind: say so, change nothing.
			return nil, fmt.Errorf("rotate: %s%s: %w", keyFile, crypto.RecipientsSuffix, err)
		}
	}
	next = next.WithRotating(true)
	report.NewPublicKey, report.Kind = next.PublicKey(0), next.KindOf(0)

	// What this check decrypts is kept for steps 2 and 3 (rotateknown.go).
	known := newKnownSet()
	statuses, err := checkInto(ctx, old, dirs, opts.Workers, known)
	if err != nil {
		return nil, err
	}
	if bad := protocol.Failed(statuses); len(bad) > 0 {
		report.Records = statuses
		return report, fmt.Errorf("rotate: %w: nothing changed: %d record(s) do not open with the keys in %s: %s; "+
			"move files that are not this store's records out of the store directory, or pass the key file they were sealed with",
			ErrRotationIncomplete, len(bad), keyFile, protocol.RecordNames(bad))
	}
	if opts.DryRun {
		report.Records = statuses
		return report, nil
	}

	// Step 1: the new primary first, the old identities after it.
	if err := crypto.ReplaceKeyFileWithPassphrase(keyFile, next, pass); err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	// Every name with a lock file: a writer that sealed to the old keys
	// holds its lock until its record is in place, even a brand new one.
	records, err := listAll(ctx, dirs, true)
	if err != nil {
		return nil, err
	}
	progress(RotateEvent{Step: "key-written", Total: len(records)})

	// Step 2: reseal each record under its own lock.
	stores := make(map[string]*Store)
	for _, d := range dirs {
		s, err := Open(d, WithKeyFile(keyFile), WithoutWatcher(), WithPassphrase(func() (string, error) { return pass, nil }),
			WithKeyIdentity(opts.Identity.File), WithPluginUI(opts.Identity.UI))
		if err != nil {
			return nil, fmt.Errorf("rotate: %w", err)
		}
		defer s.Close()
		stores[d] = s
	}
	var mu sync.Mutex // guards done and calls to progress
	done := 0
	err = batch.ForEach(ctx, records, opts.Workers, func(r *RecordStatus) {
		r.Resealed, r.Err = stores[r.Store].reseal(ctx, r.AuthType, known)
		mu.Lock()
		done++
		progress(RotateEvent{Step: "resealed", Done: done, Total: len(records)})
		mu.Unlock()
	})
	if err != nil {
		return nil, err
	}

	// Step 3: every record opens with the new primary alone.
	primary := next.PrimaryOnly()
	known.dropPlaintexts()
	err = batch.ForEach(ctx, records, opts.Workers, func(r *RecordStatus) {
		resealed, resealErr := r.Resealed, r.Err
		if !known.verify(primary, r) {
			if _, rec := statusOfRec(primary, r); rec != nil {
				clear(rec.Auth)
			}
		}
		r.Resealed = resealed
		if resealErr != nil {
			r.SetErr(resealErr) // the cause, rather than its consequence
		}
	})
	if err != nil {
		return nil, err
	}
	records = slices.DeleteFunc(records, func(r RecordStatus) bool {
		return r.Err != nil && errors.Is(r.Err, fs.ErrNotExist) // a lock without a record
	})
	report.Records = records
	if bad := protocol.Failed(records); len(bad) > 0 {
		return report, fmt.Errorf("rotate: %w: old keys kept in %s: %d record(s) do not open with the new key: %s", ErrRotationIncomplete, keyFile, len(bad), protocol.RecordNames(bad))
	}
	progress(RotateEvent{Step: "verified", Done: len(records), Total: len(records)})

	// Step 4: retire the old identities (or, with KeepOld, only mark the
	// rotation finished).
	if opts.KeepOld {
		if err := crypto.ReplaceKeyFileWithPassphrase(keyFile, next.WithRotating(false), pass); err != nil {
			return report, fmt.Errorf("rotate: every record is resealed, but rewriting the key file failed: %w", err)
		}
		return report, nil
	}
	if err := crypto.ReplaceKeyFileWithPassphrase(keyFile, primary, pass); err != nil {
		return report, fmt.Errorf("rotate: every record is resealed, but retiring the old keys failed: %w", err)
	}
	report.Retired = next.Len() - 1
	progress(RotateEvent{Step: "retired", Done: len(records), Total: len(records)})
	return report, nil
}

// CheckOptions configures Check.
type CheckOptions struct {
	Workers    int                    // records checked in parallel; 0 means 1
	Passphrase func() (string, error) // for a passphrase-protected key file
	Identity   crypto.KeyIdentity     // for a key file sealed to age recipients
}

// Check reports, for every record in dirs, which identity of keyFile opens
// it. A record that no identity opens, or that does not verify, has Err
// set. Check changes nothing.
func Check(ctx context.Context, keyFile string, dirs []string, opts CheckOptions) ([]RecordStatus, error) {
	ring, _, err := keys.Load(keyFile, opts.Passphrase, opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	if dirs, err = storeDirs(dirs...); err != nil {
		return nil, err
	}
	return checkInto(ctx, ring, dirs, opts.Workers, nil)
}

// checkInto is Check over checked dirs, keeping what it decrypts in known
// (if not nil).
func checkInto(ctx context.Context, ring *crypto.Keyring, dirs []string, workers int, known *knownSet) ([]RecordStatus, error) {
	records, err := listAll(ctx, dirs, false)
	if err != nil {
		return nil, err
	}
	if err := batch.ForEach(ctx, records, workers, func(r *RecordStatus) {
		data, rec := statusOfRec(ring, r)
		if known != nil && rec != nil {
			known.put(r.Location, data, knownRec{rec: rec, pub: ring.PublicKey(r.Key), expiry: r.Expiry})
		} else if rec != nil {
			clear(rec.Auth)
		}
	}); err != nil {
		return nil, err
	}
	return records, nil
}

func checkStoreDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if err := fsutil.CheckPrivateDir(dir, fi); err != nil {
		return fmt.Errorf("filestore: store directory %w", err)
	}
	return nil
}

// statusOfRec fills r from the record file, opened with ring, and returns
// the file's bytes and the record it opened (nil if it did not).
func statusOfRec(ring *crypto.Keyring, r *RecordStatus) ([]byte, *envelope.Record) {
	*r = RecordStatus{Store: r.Store, AuthType: r.AuthType, Location: r.Location, Key: -1}
	data, err := readRecord(r.Location)
	if err != nil {
		r.SetErr(fmt.Errorf("filestore: %w", err))
		return nil, nil
	}
	rec, idx, err := envelope.Open(ring, data, "", r.AuthType)
	if err != nil {
		r.SetErr(fmt.Errorf("filestore: %s: %w", r.Location, err))
		return nil, nil
	}
	r.Key, r.PublicKey, r.Seq, r.Written = idx, ring.PublicKey(idx), rec.Seq, rec.Written
	r.Expiry = wire.ExpiryOf(rec.Auth)
	return data, rec
}

// reseal rewrites authType's record under its lock, sealed to the current
// primary, keeping its auth object byte for byte. A record already under
// the primary is left alone; one that does not open is reported. Rotate
// calls it holding the key file's lock, so the Store's keys are current.
func (s *Store) reseal(ctx context.Context, authType string, known *knownSet) (bool, error) {
	stem, err := stemOf(authType)
	if err != nil {
		return false, err
	}
	dirInfo, err := s.checkDir()
	if err != nil {
		return false, err
	}
	unlock, _, err := lockFile(ctx, s.dir, stem)
	if err != nil {
		return false, err
	}
	defer unlock()
	ring := s.keys.Ring()
	path := s.recordPath(stem)
	data, err := readRecord(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // deleted meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("filestore: %w", err)
	}
	p, ok := known.plain(path, data)
	if !ok {
		rec, idx, err := envelope.Open(ring, data, "", authType)
		if err != nil {
			return false, fmt.Errorf("filestore: %s: %w", path, err)
		}
		p = knownRec{rec: rec, pub: ring.PublicKey(idx), expiry: wire.ExpiryOf(rec.Auth)}
	}
	rec := p.rec
	defer func() { clear(rec.Auth) }()
	if p.pub == ring.PublicKey(0) {
		// A live writer already sealed it to the new key.
		known.verified(path, data, rec, p.expiry)
		return false, nil
	}
	now := time.Now()
	rec.Seq = max(rec.Seq+1, uint64(max(now.UnixNano(), 0)))
	rec.Written = now
	ct, err := envelope.Seal(ring, rec)
	if err != nil {
		return false, fmt.Errorf("filestore: %s: %w", path, err)
	}
	if err := s.writeRecord(dirInfo, stem, ct); err != nil {
		return false, err
	}
	known.verified(path, ct, rec, p.expiry)
	s.forget(authType)
	return true, nil
}

// listAll lists the records of every directory.
func listAll(ctx context.Context, dirs []string, locks bool) ([]RecordStatus, error) {
	var records []RecordStatus
	for _, d := range dirs {
		names, err := listDir(ctx, d, locks)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			stem, _ := stemOf(n)
			records = append(records, RecordStatus{Store: d, AuthType: n, Location: filepath.Join(d, stem+recordSuffix), Key: -1})
		}
	}
	return records, nil
}

// storeDirs returns dirs made absolute, each checked to be a private
// directory.
func storeDirs(dirs ...string) ([]string, error) {
	abs := make([]string, len(dirs))
	for i, d := range dirs {
		a, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("filestore: %w", err)
		}
		if err := checkStoreDir(a); err != nil {
			return nil, err
		}
		abs[i] = a
	}
	return abs, nil
}
