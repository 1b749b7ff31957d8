package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionstore/sessionstore/internal/protocol"
)

// A rotation across hosts is staged, as in package etcdstore: the same
// key file on every host, distributed by the operator after each step, and
// each step checks the hosts' heartbeats first.
//
//  1. Stage adds a new identity to the key file, decrypt-only.
//  2. Promote, once every live host holds it, makes it the primary and
//     reseals every record to it.
//  3. Retire, once every live host's primary is the new key, reseals the
//     stragglers and drops the old identities.

// StageOptions configures Stage, and a StageReport says what it did.
type (
	StageOptions = protocol.StageOptions
	StageReport  = protocol.StageReport
)

// Stage adds a new identity to keyFile after the others, decrypt-only, and
// marks it staged (step 1): the same step for every fleet backend. A
// rerun changes nothing and reports the identity already staged.
func Stage(ctx context.Context, keyFile string, opts StageOptions) (*StageReport, error) {
	return protocol.Stage(ctx, keyFile, opts)
}

// RotateOptions configures Promote and Retire, and a RotateReport says
// what they did (or, with an error, what they found).
type (
	RotateOptions = protocol.RotateOptions
	RotateReport  = protocol.RotateReport
)

// Promote is step 2: once every live host of namespace holds keyFile's
// staged identity (else ErrHostsNotReady, nothing changed) and every
// record opens with the keys on hand (else ErrRotationIncomplete, nothing
// changed), it makes the staged identity the primary and reseals every
// record to it, each under its lock and fenced. An interrupted Promote is
// resumed by running it again.
func Promote(ctx context.Context, pool *pgxpool.Pool, namespace, keyFile string, opts RotateOptions, storeOpts ...Option) (*RotateReport, error) {
	f, err := fleet(pool, namespace, storeOpts)
	if err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	return f.Promote(ctx, keyFile, opts)
}

// Retire is step 3: once every live host's primary is keyFile's primary,
// it reseals the records still under an old key and drops the old
// identities from keyFile. It checks the hosts and the records first, as
// Promote does.
func Retire(ctx context.Context, pool *pgxpool.Pool, namespace, keyFile string, opts RotateOptions, storeOpts ...Option) (*RotateReport, error) {
	f, err := fleet(pool, namespace, storeOpts)
	if err != nil {
		return nil, fmt.Errorf("retire: %w", err)
	}
	return f.Retire(ctx, keyFile, opts)
}

// CheckOptions configures Check, and a CheckReport is what it found.
type (
	CheckOptions = protocol.CheckOptions
	CheckReport  = protocol.CheckReport
)

// Check reports, for every record of namespace, which identity of keyFile
// opens it, and the live hosts with their keys. It changes nothing.
func Check(ctx context.Context, pool *pgxpool.Pool, namespace, keyFile string, opts CheckOptions, storeOpts ...Option) (*CheckReport, error) {
	f, err := fleet(pool, namespace, storeOpts)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	return f.Check(ctx, keyFile, opts)
}

// ErrRotationIncomplete is returned (wrapped) when a step cannot finish
// because some record does not open. It is the same value in every
// backend.
var ErrRotationIncomplete = protocol.ErrRotationIncomplete

// ErrHostsNotReady is returned (wrapped) when a live host lacks the key a
// step needs: the step changed nothing, and the error names the hosts.
var ErrHostsNotReady = protocol.ErrHostsNotReady
