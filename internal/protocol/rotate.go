package protocol

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/batch"
	"github.com/sessionstore/sessionstore/internal/envelope"
	"github.com/sessionstore/sessionstore/internal/keys"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// A fleet's rotation is staged (Stage, Promote, Retire), the operator
// distributing the key file after each step; each step first checks,
// through the heartbeats, that every live host holds what it needs.

// ErrRotationIncomplete is wrapped when some record, named, does not open
// (before anything changed, or after resealing: the old keys are kept).
var ErrRotationIncomplete = errors.New("rotation incomplete")

// ErrHostsNotReady is wrapped when a live host, named, lacks the key a
// step needs: nothing changed.
var ErrHostsNotReady = errors.New("hosts not ready")

// RecordStatus describes one record, as a check or a rotation sees it;
// never a token.
type RecordStatus struct {
	Store     string    `json:"store"`      // the store: its directory, etcd prefix or namespace
	AuthType  string    `json:"auth_type"`  // the record's name
	Location  string    `json:"location"`   // where it is: its file, etcd key or row
	Key       int       `json:"key"`        // index of the identity that opens it; 0 is the primary, -1 none
	PublicKey string    `json:"public_key"` // that identity's recipient
	Seq       uint64    `json:"seq"`
	Written   time.Time `json:"written,omitzero"`
	Expiry    time.Time `json:"expiry,omitzero"` // the token's
	Resealed  bool      `json:"resealed,omitempty"`
	Err       error     `json:"-"`
	Error     string    `json:"error,omitempty"`

	ver int64            // the version this status describes (fleet backends)
	rec *envelope.Record // the record as a rotation's check decrypted it, for reseal
}

// SetErr sets r's error.
func (r *RecordStatus) SetErr(err error) {
	r.Err, r.Error = err, err.Error()
}

// Failed returns the records that did not open.
func Failed(records []RecordStatus) []RecordStatus {
	return batch.Failed(records, func(r RecordStatus) error { return r.Err })
}

// RecordNames lists records for an error message.
func RecordNames(records []RecordStatus) string {
	return batch.Names(records, func(r RecordStatus) string { return r.Location })
}

// A Record is a record's status and, if it opens, its session.
type Record struct {
	RecordStatus
	Auth sessionstore.AuthObject `json:"-"` // zero when Err is set
}

// A Fleet is what the staged steps need of a backend, without a Store.
type Fleet struct {
	Pkg       string // the backend's name, for errors
	Namespace string // as bound into records
	Where     func(name string) string
	ReadAll   func(ctx context.Context) ([]Raw, error)
	Hosts     func(ctx context.Context) ([]Host, error)
	// Open opens a Store on keyFile, to reseal records through.
	Open func(ctx context.Context, keyFile string, passphrase func() (string, error), id crypto.KeyIdentity) (*Store, error)
}

// OpenRecord opens raw, the record of raw.Name, with ring.
func (f *Fleet) OpenRecord(raw Raw, ring *crypto.Keyring) Record {
	r := Record{RecordStatus: f.status(raw)}
	if rec := f.open(&r.RecordStatus, raw.Data, ring); rec != nil {
		defer clear(rec.Auth)
		if a, err := wire.DecodeAuth(rec.Auth); err != nil {
			r.RecordStatus = f.status(raw)
			r.SetErr(fmt.Errorf("%s: %s: %w", f.Pkg, r.Location, err))
		} else {
			r.Auth = a
		}
	}
	return r
}

// status is raw's status before it is opened.
func (f *Fleet) status(raw Raw) RecordStatus {
	return RecordStatus{Store: f.Namespace, AuthType: raw.Name, Location: f.Where(raw.Name), Key: -1, ver: raw.Ver}
}

// open opens data, r's record, with ring and describes it in r; nil if it
// does not open.
func (f *Fleet) open(r *RecordStatus, data []byte, ring *crypto.Keyring) *envelope.Record {
	rec, idx, err := envelope.Open(ring, data, f.Namespace, r.AuthType)
	if err != nil {
		r.SetErr(fmt.Errorf("%s: %s: %w", f.Pkg, r.Location, err))
		return nil
	}
	r.Key, r.PublicKey, r.Seq, r.Written, r.Expiry = idx, ring.PublicKey(idx), rec.Seq, rec.Written, wire.ExpiryOf(rec.Auth)
	return rec
}

// StageOptions configures Stage.
type StageOptions struct {
	// Kind is the staged identity's kind; the zero value, crypto.SameKind,
	// is the primary's. A key file already staged keeps its staged
	// identity: asking for another kind then changes nothing (an error).
	Kind crypto.Kind

	// Passphrase, for a passphrase-protected key file, is called once.
	Passphrase func() (string, error)

	// Identity opens a key file sealed to age recipients (plugins); it is
	// sealed again to those in keyFile+crypto.SealedToSuffix.
	Identity crypto.KeyIdentity
}

// A StageReport says what Stage did.
type StageReport struct {
	PublicKey   string      // the staged identity's recipient
	Fingerprint string      // its fingerprint, as the hosts' heartbeats show it
	Kind        crypto.Kind // its kind
	PrimaryKind crypto.Kind // the kind of the primary it is to replace
	Already     bool        // the key file already had a staged identity: nothing changed
}

// Stage adds a new identity to keyFile after the others, decrypt-only, and
// marks it staged (step 1). See the backends' Stage.
func Stage(ctx context.Context, keyFile string, opts StageOptions) (*StageReport, error) {
	ring, pass, unlock, err := openKeyFile(ctx, keyFile, opts.Passphrase, opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	defer unlock()
	already, last := ring.Staged(), ring.Len()-1
	switch {
	case already:
		if opts.Kind != crypto.SameKind && opts.Kind != ring.KindOf(last) {
			return nil, fmt.Errorf("stage: %s already has a staged %s key (%s), and %s was asked for; nothing changed: promote it with rekey (and retire the old key) before staging another, or restore the key file from before it was staged",
				keyFile, ring.KindOf(last), ring.Fingerprint(last), opts.Kind)
		}
	case ring.Rotating():
		return nil, fmt.Errorf("stage: %s: a rotation is in progress (its first key is new): finish it with rekey -retire before staging another key", keyFile)
	default:
		id, err := crypto.GenerateIdentity(cmp.Or(opts.Kind, ring.KindOf(0)) == crypto.PostQuantum)
		if err != nil {
			return nil, fmt.Errorf("stage: %w", err)
		}
		if ring, err = ring.Stage(id); err != nil {
			return nil, fmt.Errorf("stage: %s: %w", keyFile, err)
		}
		if err := crypto.ReplaceKeyFileWithPassphrase(keyFile, ring, pass); err != nil {
			return nil, fmt.Errorf("stage: %w", err)
		}
		last = ring.Len() - 1
	}
	return &StageReport{PublicKey: ring.PublicKey(last), Fingerprint: ring.Fingerprint(last),
		Kind: ring.KindOf(last), PrimaryKind: ring.KindOf(0), Already: already}, nil
}

// RotateOptions configures Promote and Retire.
type RotateOptions struct {
	DryRun  bool // check the hosts and the records; change nothing
	Workers int  // records resealed in parallel; 0 means 1

	Passphrase func() (string, error) // as StageOptions'
	Identity   crypto.KeyIdentity     // as StageOptions'
}

// A RotateReport says what Promote or Retire did (or, with an error, what
// they found).
type RotateReport struct {
	PublicKey   string         // the (new) primary's recipient
	Fingerprint string         // its fingerprint
	Kind        crypto.Kind    // its kind
	OldKind     crypto.Kind    // the kind of the primary Promote replaced (Retire: Kind)
	Hosts       []Host         // the live hosts, as their heartbeats said
	Lacking     []Host         // the live hosts that lack what the step needs
	Records     []RecordStatus // every record, after the step
	Resumed     bool           // Promote finished a promotion that was interrupted
	Stragglers  int            // records still under an old key (sealed by hosts with the previous key file)
	Retired     int            // identities Retire removed from the key file
}

// Promote is step 2: it promotes keyFile's staged identity to the primary
// and reseals every record to it. See the backends' Promote.
func (f *Fleet) Promote(ctx context.Context, keyFile string, opts RotateOptions) (*RotateReport, error) {
	ring, pass, unlock, err := openKeyFile(ctx, keyFile, opts.Passphrase, opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	defer unlock()
	report := &RotateReport{OldKind: ring.KindOf(0)}
	var next *crypto.Keyring
	switch {
	case ring.Staged():
		if next, err = ring.Promote(); err != nil {
			return nil, fmt.Errorf("rotate: %s: %w", keyFile, err)
		}
		next = next.WithRotating(true)
	case ring.Rotating():
		next, report.Resumed = ring, true
		if ring.Len() > 1 {
			report.OldKind = ring.KindOf(1)
		}
	default:
		return nil, fmt.Errorf("rotate: %s has no staged key: run rekey -stage -key %s, distribute it to every host, then run this again", keyFile, keyFile)
	}
	report.PublicKey, report.Fingerprint, report.Kind = next.PublicKey(0), next.Fingerprint(0), next.KindOf(0)
	if report.Hosts, err = f.Hosts(ctx); err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	for _, h := range report.Hosts {
		if !h.Holds(report.Fingerprint) {
			report.Lacking = append(report.Lacking, h)
		}
	}
	if len(report.Lacking) > 0 {
		return report, fmt.Errorf("rotate: %w: nothing changed: %d of %d live host(s) lack the staged key %s: %s; distribute %s to them, wait until rekey -check shows they hold it, and run again",
			ErrHostsNotReady, len(report.Lacking), len(report.Hosts), report.Fingerprint, hostNames(report.Lacking), keyFile)
	}
	return report, f.resealAll(ctx, "rotate", ring, next, keyFile, pass, opts, report)
}

// Retire is step 3: once every live host's primary is keyFile's primary,
// it reseals the records still under an old key and drops the old
// identities from keyFile. See the backends' Retire.
func (f *Fleet) Retire(ctx context.Context, keyFile string, opts RotateOptions) (*RotateReport, error) {
	ring, pass, unlock, err := openKeyFile(ctx, keyFile, opts.Passphrase, opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("retire: %w", err)
	}
	defer unlock()
	if ring.Staged() {
		return nil, fmt.Errorf("retire: %s has a staged key that is not the primary yet: promote it first with rekey -key %s", keyFile, keyFile)
	}
	report := &RotateReport{PublicKey: ring.PublicKey(0), Fingerprint: ring.Fingerprint(0), Kind: ring.KindOf(0), OldKind: ring.KindOf(0)}
	if report.Hosts, err = f.Hosts(ctx); err != nil {
		return nil, fmt.Errorf("retire: %w", err)
	}
	if ring.Len() == 1 {
		return report, nil
	}
	for _, h := range report.Hosts {
		if h.Primary() != report.Fingerprint {
			report.Lacking = append(report.Lacking, h)
		}
	}
	if len(report.Lacking) > 0 {
		return report, fmt.Errorf("retire: %w: nothing changed: %d of %d live host(s) do not use the new key %s as their primary yet: %s; distribute %s to them, wait until rekey -check shows it as their primary, and run again",
			ErrHostsNotReady, len(report.Lacking), len(report.Hosts), report.Fingerprint, hostNames(report.Lacking), keyFile)
	}
	if err := f.resealAll(ctx, "retire", ring, nil, keyFile, pass, opts, report); err != nil || opts.DryRun {
		return report, err
	}
	if err := crypto.ReplaceKeyFileWithPassphrase(keyFile, ring.PrimaryOnly(), pass); err != nil {
		return report, fmt.Errorf("retire: every record is under the new key, but rewriting %s failed: %w", keyFile, err)
	}
	report.Retired = ring.Len() - 1
	return report, nil
}

// resealAll checks that every record opens with ring (else
// ErrRotationIncomplete, nothing changed), writes next to keyFile (unless
// nil, or DryRun), reseals every record through a Store opened on keyFile
// and checks them again. A record then not under the primary is
// ErrRotationIncomplete for Retire (next nil), a straggler for Promote.
func (f *Fleet) resealAll(ctx context.Context, step string, ring, next *crypto.Keyring, keyFile, pass string,
	opts RotateOptions, report *RotateReport) error {
	records, err := f.check(ctx, ring, opts.Workers, true, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	defer func() {
		for i := range records {
			if r := &records[i]; r.rec != nil {
				clear(r.rec.Auth) // plaintext that reseal did not take
				r.rec = nil
			}
		}
	}()
	if bad := Failed(records); len(bad) > 0 {
		report.Records = records
		return fmt.Errorf("%s: %w: nothing changed: %d record(s) do not open with the keys in %s: %s; delete records that are not this store's (sessionstore rm), or pass the key file they were sealed with",
			step, ErrRotationIncomplete, len(bad), keyFile, RecordNames(bad))
	}
	if opts.DryRun {
		report.Records = records
		return nil
	}
	if next != nil && !report.Resumed {
		if err := crypto.ReplaceKeyFileWithPassphrase(keyFile, next, pass); err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
	}
	s, err := f.Open(ctx, keyFile, func() (string, error) { return pass, nil }, opts.Identity)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	defer s.Close()
	err = batch.ForEach(ctx, records, opts.Workers, func(r *RecordStatus) {
		if err := s.reseal(ctx, r); err != nil {
			r.SetErr(err)
		}
	})
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	resealed := map[string]RecordStatus{}
	for _, r := range records {
		if r.Err != nil || r.ver != 0 {
			resealed[r.AuthType] = r // an error: the cause, rather than its consequence
		}
	}
	after, err := f.check(ctx, s.Keyring(), opts.Workers, false, resealed)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	report.Records = after
	var bad []RecordStatus
	for _, r := range after {
		switch {
		case r.Err != nil, r.Key != 0 && next == nil:
			bad = append(bad, r)
		case r.Key != 0:
			report.Stragglers++
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %w: old keys kept in %s: %d record(s) do not open with the new key: %s", step, ErrRotationIncomplete, keyFile, len(bad), RecordNames(bad))
	}
	return nil
}

// CheckOptions configures Check.
type CheckOptions struct {
	Workers    int                    // records checked in parallel; 0 means 1
	Passphrase func() (string, error) // for a passphrase-protected key file
	Identity   crypto.KeyIdentity     // for a key file sealed to age recipients (plugins)
}

// A CheckReport is what Check found.
type CheckReport struct {
	PublicKey   string         // keyFile's primary's recipient
	Fingerprint string         // its fingerprint
	Staged      string         // the fingerprint of keyFile's staged identity, or ""
	Records     []RecordStatus // every record, by name
	Hosts       []Host         // the live hosts, by host and pid
}

// Check reports, for every record, which identity of keyFile opens it,
// and the live hosts with their keys. It changes nothing.
func (f *Fleet) Check(ctx context.Context, keyFile string, opts CheckOptions) (*CheckReport, error) {
	ring, _, err := keys.Load(keyFile, opts.Passphrase, opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	rep := &CheckReport{PublicKey: ring.PublicKey(0), Fingerprint: ring.Fingerprint(0)}
	if ring.Staged() {
		rep.Staged = ring.Fingerprint(ring.Len() - 1)
	}
	if rep.Records, err = f.check(ctx, ring, opts.Workers, false, nil); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	if rep.Hosts, err = f.Hosts(ctx); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	return rep, nil
}

// ReadRecords reads every record and opens it with ring, sorted by auth
// type; one that does not open has Err set.
func (f *Fleet) ReadRecords(ctx context.Context, ring *crypto.Keyring) ([]Record, error) {
	raws, err := f.readAll(ctx)
	if err != nil {
		return nil, err
	}
	recs := make([]Record, len(raws))
	for i, raw := range raws {
		recs[i] = f.OpenRecord(raw, ring)
	}
	return recs, nil
}

// readAll reads every record, sorted by auth type.
func (f *Fleet) readAll(ctx context.Context) ([]Raw, error) {
	raws, err := f.ReadAll(ctx)
	slices.SortFunc(raws, func(a, b Raw) int { return strings.Compare(a.Name, b.Name) })
	return raws, err
}

// check reads every record and reports which identity of ring opens each,
// keeping what it decrypted in RecordStatus.rec if keep. A record whose
// status prior already gives (resealed at that version, or failed to
// reseal) is not decrypted again.
func (f *Fleet) check(ctx context.Context, ring *crypto.Keyring, workers int, keep bool, prior map[string]RecordStatus) ([]RecordStatus, error) {
	raws, err := f.readAll(ctx)
	if err != nil {
		return nil, err
	}
	records := make([]RecordStatus, len(raws))
	data := make(map[string][]byte, len(raws))
	for i, raw := range raws {
		records[i], data[raw.Name] = f.status(raw), raw.Data
	}
	err = batch.ForEach(ctx, records, workers, func(r *RecordStatus) {
		if p, ok := prior[r.AuthType]; ok && (p.Err != nil || p.ver == r.ver) {
			*r = p
		} else if rec := f.open(r, data[r.AuthType], ring); rec != nil && keep {
			r.rec = rec
		} else if rec != nil {
			clear(rec.Auth)
		}
	})
	if err != nil {
		return nil, err
	}
	return records, nil
}

// reseal rewrites r's record, under its lock and fenced, sealed to the
// Store's primary, keeping its auth object byte for byte; a record already
// under the primary is left alone. r.rec, if the record has not changed
// since check decrypted it, spares a decryption. r then describes the
// record under the primary (ver 0 if it was deleted meanwhile).
func (s *Store) reseal(ctx context.Context, r *RecordStatus) error {
	rec, pub := r.rec, r.PublicKey
	r.rec = nil
	if rec != nil {
		defer clear(rec.Auth)
	}
	l, unlock, err := s.lockCurrentKeys(ctx, r.AuthType)
	if err != nil {
		return err
	}
	defer unlock()
	ring := s.keys.Ring()
	raw, err := s.b.Read(ctx, r.AuthType)
	if err != nil {
		return err
	}
	checked := r.ver
	r.ver = 0
	if raw.Data == nil {
		return nil // deleted meanwhile
	}
	if rec == nil || checked != raw.Ver {
		var idx int
		if rec, idx, err = envelope.Open(ring, raw.Data, s.ns, r.AuthType); err != nil {
			return s.fail(r.AuthType, err)
		}
		defer clear(rec.Auth)
		pub = ring.PublicKey(idx)
	}
	r.Key, r.PublicKey, r.Expiry = 0, ring.PublicKey(0), wire.ExpiryOf(rec.Auth)
	if pub == ring.PublicKey(0) {
		// A host with the new key file already sealed it to the new key.
		r.Seq, r.Written, r.ver = rec.Seq, rec.Written, raw.Ver
		return nil
	}
	now := s.now()
	rec.Seq = max(rec.Seq+1, uint64(max(now.UnixNano(), 0)))
	rec.Written = now
	ct, err := envelope.Seal(ring, rec)
	if err != nil {
		return s.fail(r.AuthType, err)
	}
	ver, err := s.commit(ctx, l, unlock, r.AuthType, raw.Ver, ct)
	s.forget(r.AuthType, 0)
	if err != nil {
		return err
	}
	r.Seq, r.Written, r.ver, r.Resealed = rec.Seq, rec.Written, ver, true
	return nil
}

// openKeyFile locks keyFile, removes a temp key file that a killed
// rotation left (it holds secret keys), and loads it.
func openKeyFile(ctx context.Context, keyFile string, askPass func() (string, error), id crypto.KeyIdentity) (ring *crypto.Keyring, pass string, unlock func(), err error) {
	if unlock, err = keys.LockFile(ctx, keyFile); err != nil {
		return nil, "", nil, err
	}
	if err = crypto.RemoveTempKeyFile(keyFile); err == nil {
		ring, pass, err = keys.Load(keyFile, askPass, id)
	}
	if err != nil {
		unlock()
		return nil, "", nil, err
	}
	return ring, pass, unlock, nil
}

// hostNames lists hosts for an error message.
func hostNames(hosts []Host) string {
	return batch.Names(hosts, func(h Host) string {
		return fmt.Sprintf("%s pid %d (id %s, primary %s)", h.Host, h.PID, h.ID, h.Primary())
	})
}
