package etcdstore

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore/internal/protocol"
)

// ErrRotationIncomplete is returned (wrapped) when a step cannot finish
// because some record does not open; the error names the records.
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

// Stage is step 1 of a rotation across hosts: it adds a new identity to
// keyFile after the others, decrypt-only, for the operator to distribute
// to every host. If keyFile already has a staged identity, it changes
// nothing and reports it (Already). It refuses a key file whose rotation
// was promoted but not retired.
func Stage(ctx context.Context, keyFile string, opts StageOptions) (*StageReport, error) {
	return protocol.Stage(ctx, keyFile, opts)
}

// Promote is step 2: once every live host holds the staged identity, it
// makes it keyFile's primary and reseals every record under prefix to it.
// If a host is not ready or a record does not open with the keys on hand,
// it changes nothing and returns an error wrapping ErrHostsNotReady (with
// report.Lacking) or ErrRotationIncomplete. Run again after an
// interruption, it resumes (Resumed).
func Promote(ctx context.Context, client *clientv3.Client, prefix, keyFile string, opts RotateOptions) (*RotateReport, error) {
	prefix, err := cleanPrefix("promote", client, prefix)
	if err != nil {
		return nil, err
	}
	return fleet(client, prefix).Promote(ctx, keyFile, opts)
}

// Retire is step 3: once every live host's primary is keyFile's, it
// reseals the records still sealed to an old key and drops the old
// identities from keyFile, after the same checks as Promote. If a record
// does not open with the new primary after resealing, the old keys are
// kept (ErrRotationIncomplete).
func Retire(ctx context.Context, client *clientv3.Client, prefix, keyFile string, opts RotateOptions) (*RotateReport, error) {
	prefix, err := cleanPrefix("retire", client, prefix)
	if err != nil {
		return nil, err
	}
	return fleet(client, prefix).Retire(ctx, keyFile, opts)
}

// Check reports which identity of keyFile opens each record under prefix
// (Err set where none does), and the live hosts with their keys. It
// changes nothing.
func Check(ctx context.Context, client *clientv3.Client, prefix, keyFile string, opts CheckOptions) (*CheckReport, error) {
	prefix, err := cleanPrefix("check", client, prefix)
	if err != nil {
		return nil, err
	}
	return fleet(client, prefix).Check(ctx, keyFile, opts)
}
