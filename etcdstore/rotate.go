package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/batch"
	"github.com/sessionstore/sessionstore/internal/keys"
)

// A rotation across hosts is staged, as Kubernetes rotates its
// encryption-at-rest keys. Every host uses the same key file; the operator
// distributes it after each step, and each step checks, through the hosts'
// heartbeats, that every live host holds what it needs:
//
//  1. Stage: a new identity is added to the key file after the others,
//     decrypt-only. Hosts that have it open records sealed to it.
//  2. Promote: once every live host holds the staged identity, it becomes
//     the primary (the old primary is kept, decrypt-only) and every record
//     is resealed to it. Hosts that still have the previous key file seal
//     their writes to the old primary, which every host can still open.
//  3. Retire: once every live host's primary is the new key, records that
//     such hosts sealed to the old one are resealed, and the old
//     identities are dropped from the key file.

// ErrRotationIncomplete is returned (wrapped) when a step cannot finish
// because some record does not open (before anything changed, or after
// resealing, when the old keys are kept). The records are named.
var ErrRotationIncomplete = errors.New("rotation incomplete")

// ErrHostsNotReady is returned (wrapped) when a live host lacks the key a
// step needs: the step changed nothing, and the error names the hosts.
var ErrHostsNotReady = errors.New("hosts not ready")

// StageOptions configures Stage.
type StageOptions struct {
	// Kind is the staged identity's kind. The zero value, crypto.SameKind,
	// gives it the current primary's, so that a routine rotation never
	// changes it; crypto.X25519 or crypto.PostQuantum choose that kind.
	// A key file already staged keeps its staged identity, whatever its
	// kind; asking for the other kind then is an error that changes
	// nothing.
	Kind crypto.Kind

	// Passphrase, for a passphrase-protected key file, is called once;
	// the key file keeps the same passphrase.
	Passphrase func() (string, error)

	// Identity, for a key file sealed to age recipients (plugins), opens
	// it; the key file is sealed again to the recipients in
	// keyFile+crypto.SealedToSuffix.
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
// marks it staged (step 1). The operator then distributes the key file to
// every host. If keyFile already has a staged identity, Stage changes
// nothing and reports it (Already), whatever its kind: a rerun never piles
// up identities, and a key file already distributed stays valid (asking
// for the other kind then is an error). It refuses a key file whose
// rotation was promoted but not retired (finish it with Retire first).
// Stage holds keyFile+".lock" and removes a temp key file that a killed
// rotation left.
func Stage(ctx context.Context, keyFile string, opts StageOptions) (*StageReport, error) {
	ring, pass, unlock, err := openKeyFile(ctx, keyFile, opts.Passphrase, opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	defer unlock()
	if ring.Staged() {
		last := ring.Len() - 1
		if opts.Kind != crypto.SameKind && opts.Kind != ring.KindOf(last) {
			return nil, fmt.Errorf("stage: %s already has a staged %s key (%s), and %s was asked for; nothing changed: promote it with rekey -etcd (and retire the old key) before staging another, or restore the key file from before it was staged",
				keyFile, ring.KindOf(last), ring.Fingerprint(last), opts.Kind)
		}
		return &StageReport{PublicKey: ring.PublicKey(last), Fingerprint: ring.Fingerprint(last),
			Kind: ring.KindOf(last), PrimaryKind: ring.KindOf(0), Already: true}, nil
	}
	if ring.Rotating() {
		return nil, fmt.Errorf("stage: %s: a rotation is in progress (its first key is new): finish it with rekey -retire before staging another key", keyFile)
	}
	kind := opts.Kind
	if kind == crypto.SameKind {
		kind = ring.KindOf(0)
	}
	id, err := crypto.GenerateIdentity(kind == crypto.PostQuantum)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	staged, err := ring.Stage(id)
	if err != nil {
		return nil, fmt.Errorf("stage: %s: %w", keyFile, err)
	}
	if err := crypto.ReplaceKeyFileWithPassphrase(keyFile, staged, pass); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	last := staged.Len() - 1
	return &StageReport{PublicKey: staged.PublicKey(last), Fingerprint: staged.Fingerprint(last),
		Kind: staged.KindOf(last), PrimaryKind: staged.KindOf(0)}, nil
}

// RotateOptions configures Promote and Retire.
type RotateOptions struct {
	DryRun  bool // check the hosts and the records; change nothing
	Workers int  // records resealed in parallel; 0 means 1

	// Passphrase, for a passphrase-protected key file, is called once;
	// the key file keeps the same passphrase.
	Passphrase func() (string, error)

	// Identity, for a key file sealed to age recipients (plugins), opens
	// it; the key file is sealed again to the recipients in
	// keyFile+crypto.SealedToSuffix.
	Identity crypto.KeyIdentity
}

// A RotateReport says what Promote or Retire did (or, with an error, what
// they found).
type RotateReport struct {
	PublicKey   string         // the (new) primary's recipient
	Fingerprint string         // its fingerprint
	Kind        crypto.Kind    // its kind
	OldKind     crypto.Kind    // the kind of the primary Rotate replaced (Retire: Kind)
	Hosts       []Host         // the live hosts, as their heartbeats said
	Lacking     []Host         // the live hosts that lack what the step needs
	Records     []RecordStatus // every record, after the step
	Resumed     bool           // Promote finished a promotion that was interrupted
	Stragglers  int            // records still under an old key (sealed by hosts with the previous key file)
	Retired     int            // identities Retire removed from the key file
}

// Promote is step 2: it promotes keyFile's staged identity to the primary
// and reseals every record under prefix to it, each under its etcd lock
// and fenced, through a Store opened on keyFile.
//
// Before it changes anything, it checks that every live host (Hosts)
// holds the staged identity, and that every record opens with the keys on
// hand; otherwise it returns an error wrapping ErrHostsNotReady (with
// report.Lacking) or ErrRotationIncomplete, and keyFile is byte for byte
// as it was. The key file it writes is marked as a rotation in progress:
// if Promote is interrupted, running it again resumes (Resumed). Records
// that hosts with the previous key file seal to the old primary meanwhile
// are counted in Stragglers; Retire reseals them.
func Promote(ctx context.Context, client *clientv3.Client, prefix, keyFile string, opts RotateOptions) (*RotateReport, error) {
	prefix, err := cleanPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
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
	if report.Hosts, err = Hosts(ctx, client, prefix); err != nil {
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

	known := newKnownSet()
	records, err := checkRecords(ctx, client, prefix, ring, opts.Workers, known, nil)
	if err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	if bad := failed(records); len(bad) > 0 {
		report.Records = records
		return report, fmt.Errorf("rotate: %w: nothing changed: %d record(s) do not open with the keys in %s: %s; delete records that are not this store's (sessionstore rm), or pass the key file they were sealed with",
			ErrRotationIncomplete, len(bad), keyFile, recordNames(bad))
	}
	if opts.DryRun {
		report.Records = records
		return report, nil
	}
	if !report.Resumed {
		if err := crypto.ReplaceKeyFileWithPassphrase(keyFile, next, pass); err != nil {
			return nil, fmt.Errorf("rotate: %w", err)
		}
	}
	return report, resealAll(ctx, client, prefix, keyFile, pass, opts.Identity, records, known, opts.Workers, report, false)
}

// Retire is step 3: once every live host's primary is keyFile's primary,
// it reseals the records still under an old key (written by hosts that had
// the previous key file) and drops the old identities from keyFile.
//
// Before it changes anything, it checks the hosts' heartbeats (else
// ErrHostsNotReady, with report.Lacking) and that every record opens with
// the keys on hand (else ErrRotationIncomplete); keyFile is then byte for
// byte as it was. If a record does not open with the new primary after
// resealing, the old keys are kept (ErrRotationIncomplete). A key file
// with one identity has nothing to retire: Retire reports Retired 0.
func Retire(ctx context.Context, client *clientv3.Client, prefix, keyFile string, opts RotateOptions) (*RotateReport, error) {
	prefix, err := cleanPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("retire: %w", err)
	}
	ring, pass, unlock, err := openKeyFile(ctx, keyFile, opts.Passphrase, opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("retire: %w", err)
	}
	defer unlock()
	if ring.Staged() {
		return nil, fmt.Errorf("retire: %s has a staged key that is not the primary yet: promote it first with rekey -key %s -etcd …", keyFile, keyFile)
	}
	report := &RotateReport{PublicKey: ring.PublicKey(0), Fingerprint: ring.Fingerprint(0), Kind: ring.KindOf(0), OldKind: ring.KindOf(0)}
	if report.Hosts, err = Hosts(ctx, client, prefix); err != nil {
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
	known := newKnownSet()
	records, err := checkRecords(ctx, client, prefix, ring, opts.Workers, known, nil)
	if err != nil {
		return nil, fmt.Errorf("retire: %w", err)
	}
	if bad := failed(records); len(bad) > 0 {
		report.Records = records
		return report, fmt.Errorf("retire: %w: nothing changed: %d record(s) do not open with the keys in %s: %s; delete records that are not this store's (sessionstore rm), or pass the key file they were sealed with",
			ErrRotationIncomplete, len(bad), keyFile, recordNames(bad))
	}
	if opts.DryRun {
		report.Records = records
		return report, nil
	}
	if err := resealAll(ctx, client, prefix, keyFile, pass, opts.Identity, records, known, opts.Workers, report, true); err != nil {
		return report, err
	}
	if err := crypto.ReplaceKeyFileWithPassphrase(keyFile, ring.PrimaryOnly(), pass); err != nil {
		return report, fmt.Errorf("retire: every record is under the new key, but rewriting %s failed: %w", keyFile, err)
	}
	report.Retired = ring.Len() - 1
	return report, nil
}

// resealAll reseals records through a Store opened on keyFile (whose
// primary is the new key), then reads every record again and reports it
// in report. With strict, a record not under the primary is an error
// (ErrRotationIncomplete); otherwise it is counted in report.Stragglers.
func resealAll(ctx context.Context, client *clientv3.Client, prefix, keyFile, pass string, id crypto.KeyIdentity, records []RecordStatus,
	known *knownSet, workers int, report *RotateReport, strict bool) error {
	step := "rotate"
	if strict {
		step = "retire"
	}
	s, err := Open(ctx, client, prefix, WithKeyFile(keyFile), WithPassphrase(func() (string, error) { return pass, nil }),
		WithKeyIdentity(id.File), WithPluginUI(id.UI))
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	defer s.Close()
	err = batch.ForEach(ctx, records, workers, func(r *RecordStatus) {
		if err := s.reseal(ctx, r, known.take(r.AuthType)); err != nil {
			r.setErr(err)
		}
	})
	known.clear()
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	resealed := map[string]RecordStatus{}
	for _, r := range records {
		if r.Err != nil {
			resealed[r.AuthType] = r // the cause, rather than its consequence
		} else if r.modRev != 0 {
			resealed[r.AuthType] = r
		}
	}
	after, err := checkRecords(ctx, client, prefix, s.Keyring(), workers, nil, resealed)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	report.Records = after
	var bad []RecordStatus
	for _, r := range after {
		switch {
		case r.Err != nil:
			bad = append(bad, r)
		case r.Key != 0 && strict:
			bad = append(bad, r)
		case r.Key != 0:
			report.Stragglers++
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %w: old keys kept in %s: %d record(s) do not open with the new key: %s", step, ErrRotationIncomplete, keyFile, len(bad), recordNames(bad))
	}
	return nil
}

// CheckOptions configures Check.
type CheckOptions struct {
	Workers    int                    // records checked in parallel; 0 means 1
	Passphrase func() (string, error) // for a passphrase-protected key file
	Identity   crypto.KeyIdentity     // for a key file sealed to age recipients
}

// A CheckReport is what Check found.
type CheckReport struct {
	PublicKey   string         // keyFile's primary's recipient
	Fingerprint string         // its fingerprint
	Staged      string         // the fingerprint of keyFile's staged identity, or ""
	Records     []RecordStatus // every record under the prefix, by name
	Hosts       []Host         // the live hosts, by host and pid
}

// Check reports, for every record under prefix, which identity of keyFile
// opens it, and the live hosts with their keys. A record that no identity
// opens, or that does not verify, has Err set. Check changes nothing.
func Check(ctx context.Context, client *clientv3.Client, prefix, keyFile string, opts CheckOptions) (*CheckReport, error) {
	prefix, err := cleanPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	ring, _, err := keys.Load(keyFile, opts.Passphrase, opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	rep := &CheckReport{PublicKey: ring.PublicKey(0), Fingerprint: ring.Fingerprint(0)}
	if ring.Staged() {
		rep.Staged = ring.Fingerprint(ring.Len() - 1)
	}
	if rep.Records, err = checkRecords(ctx, client, prefix, ring, opts.Workers, nil, nil); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	if rep.Hosts, err = Hosts(ctx, client, prefix); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	return rep, nil
}

func cleanPrefix(prefix string) (string, error) {
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		return "", errors.New("etcdstore: the prefix is empty")
	}
	return prefix, nil
}

// hostNames lists hosts for an error message.
func hostNames(hosts []Host) string {
	const most = 10
	var s []string
	for i, h := range hosts {
		if i == most {
			s = append(s, fmt.Sprintf("and %d more", len(hosts)-most))
			break
		}
		s = append(s, fmt.Sprintf("%s pid %d (lease %s, primary %s)", h.Host, h.PID, h.ID, h.Primary()))
	}
	return strings.Join(s, ", ")
}
