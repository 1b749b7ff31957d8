package etcdstore

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore/internal/protocol"
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
// resealing, when the old keys are kept). The records are named. It is the
// same value in every backend.
var ErrRotationIncomplete = protocol.ErrRotationIncomplete

// ErrHostsNotReady is returned (wrapped) when a live host lacks the key a
// step needs: the step changed nothing, and the error names the hosts.
var ErrHostsNotReady = protocol.ErrHostsNotReady

// The options and reports of the staged steps and Check.
type (
	StageOptions  = protocol.StageOptions
	StageReport   = protocol.StageReport
	RotateOptions = protocol.RotateOptions
	RotateReport  = protocol.RotateReport
	CheckOptions  = protocol.CheckOptions
	CheckReport   = protocol.CheckReport
)

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
	return protocol.Stage(ctx, keyFile, opts)
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
	prefix, err := cleanPrefix("promote", client, prefix)
	if err != nil {
		return nil, err
	}
	return fleet(client, prefix).Promote(ctx, keyFile, opts)
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
	prefix, err := cleanPrefix("retire", client, prefix)
	if err != nil {
		return nil, err
	}
	return fleet(client, prefix).Retire(ctx, keyFile, opts)
}

// Check reports, for every record under prefix, which identity of keyFile
// opens it, and the live hosts with their keys. A record that no identity
// opens, or that does not verify, has Err set. Check changes nothing.
func Check(ctx context.Context, client *clientv3.Client, prefix, keyFile string, opts CheckOptions) (*CheckReport, error) {
	prefix, err := cleanPrefix("check", client, prefix)
	if err != nil {
		return nil, err
	}
	return fleet(client, prefix).Check(ctx, keyFile, opts)
}
