package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/batch"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// RecordStatus describes one record, as Check, Promote and Retire see it.
// It never holds a token.
type RecordStatus struct {
	Prefix    string    `json:"prefix"`
	AuthType  string    `json:"auth_type"`
	EtcdKey   string    `json:"etcd_key"`
	Key       int       `json:"key"`        // index of the identity that opens it; 0 is the primary, -1 none
	PublicKey string    `json:"public_key"` // that identity's recipient
	Seq       uint64    `json:"seq"`
	Written   time.Time `json:"written,omitzero"`
	Expiry    time.Time `json:"expiry,omitzero"` // the token's
	Resealed  bool      `json:"resealed,omitempty"`
	Err       error     `json:"-"`
	Error     string    `json:"error,omitempty"`

	modRev int64  // the revision this status describes
	data   []byte // the sealed record, while it is checked
}

func (r *RecordStatus) setErr(err error) {
	r.Err, r.Error = err, err.Error()
}

// checkRecords reads every record under prefix and reports which identity
// of ring opens each. What it decrypts is kept in known (if not nil) for a
// reseal. A record whose status prior already gives (resealed at that
// revision, or failed to reseal) is not decrypted again.
func checkRecords(ctx context.Context, client *clientv3.Client, prefix string, ring *crypto.Keyring, workers int,
	known *knownSet, prior map[string]RecordStatus) ([]RecordStatus, error) {
	pfx := recordsPrefix(prefix)
	resp, err := client.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: read %s: %w", pfx, ctxErr(ctx, err))
	}
	records := make([]RecordStatus, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		name, ok := nameOf(strings.TrimPrefix(string(kv.Key), pfx))
		if !ok {
			continue // not a record of this store, as List
		}
		records = append(records, RecordStatus{Prefix: prefix, AuthType: name, EtcdKey: string(kv.Key), Key: -1,
			modRev: kv.ModRevision, data: kv.Value})
	}
	err = batch.ForEach(ctx, records, workers, func(r *RecordStatus) {
		data := r.data
		r.data = nil
		if p, ok := prior[r.AuthType]; ok && (p.Err != nil || p.modRev == r.modRev) {
			*r = p
			return
		}
		rec, idx, err := ring.OpenIn(data, prefix, r.AuthType)
		if err != nil {
			r.setErr(fmt.Errorf("etcdstore: %s: %w", r.EtcdKey, err))
			return
		}
		r.Key, r.PublicKey, r.Seq, r.Written, r.Expiry = idx, ring.PublicKey(idx), rec.Seq, rec.Written, wire.ExpiryOf(rec.Auth)
		if known != nil {
			known.add(r.AuthType, &knownRec{modRev: r.modRev, rec: rec, pub: r.PublicKey})
		} else {
			clear(rec.Auth)
		}
	})
	if err != nil {
		return nil, err
	}
	return records, nil
}

// reseal rewrites r's record, under its lock and fenced, sealed to the
// Store's primary and extra recipients, keeping its auth object byte for
// byte. A record already under the primary is left alone. k, if not nil,
// is the record as a check decrypted it: used if the record has not
// changed since. r then describes the record under the primary (modRev 0
// if it was deleted meanwhile).
func (s *Store) reseal(ctx context.Context, r *RecordStatus, k *knownRec) error {
	stem, err := stemOf(r.AuthType)
	if err != nil {
		return err
	}
	key := s.recordKey(stem)
	m, sess, unlock, err := s.lockCurrentKeys(ctx, stem)
	if err != nil {
		return err
	}
	defer unlock()
	ring := s.keys.Ring()
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("etcdstore: read %s: %w", key, ctxErr(ctx, err))
	}
	r.modRev = 0
	if len(resp.Kvs) == 0 {
		return nil // deleted meanwhile
	}
	kv := resp.Kvs[0]
	var rec *crypto.Record
	var pub string
	if k != nil && k.modRev == kv.ModRevision {
		rec, pub = k.rec, k.pub
	} else {
		var idx int
		if rec, idx, err = ring.OpenIn(kv.Value, s.prefix, r.AuthType); err != nil {
			return fmt.Errorf("etcdstore: %s: %w", key, err)
		}
		pub = ring.PublicKey(idx)
	}
	defer clear(rec.Auth)
	r.Key, r.PublicKey, r.Expiry = 0, ring.PublicKey(0), wire.ExpiryOf(rec.Auth)
	if pub == ring.PublicKey(0) {
		// A host with the new key file already sealed it to the new key.
		r.Seq, r.Written, r.modRev = rec.Seq, rec.Written, kv.ModRevision
		return nil
	}
	now := s.now()
	rec.Seq = max(rec.Seq+1, uint64(max(now.UnixNano(), 0)))
	rec.Written = now
	ct, err := ring.Seal(rec)
	if err != nil {
		return fmt.Errorf("etcdstore: %s: %w", key, err)
	}
	rev, err := s.commit(ctx, sess, m, key, kv.ModRevision, clientv3.OpPut(key, string(ct)), ct)
	var unknown *unknownOutcome
	if errors.As(err, &unknown) {
		unlock()
		rev, err = s.settle(ctx, key, ct, unknown)
	}
	s.forget(r.AuthType, 0)
	if err != nil {
		return err
	}
	r.Seq, r.Written, r.modRev, r.Resealed = rec.Seq, rec.Written, rev, true
	return nil
}

// A knownRec is a record as a check decrypted it, at revision modRev,
// opened by the identity whose recipient is pub.
type knownRec struct {
	modRev int64
	rec    *crypto.Record
	pub    string
}

// A knownSet holds what a check decrypted, by auth type, so that a
// rotation decrypts each record once.
type knownSet struct {
	mu sync.Mutex
	m  map[string]*knownRec
}

func newKnownSet() *knownSet { return &knownSet{m: make(map[string]*knownRec)} }

func (k *knownSet) add(name string, r *knownRec) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[name] = r
}

// take removes and returns name's entry, or nil.
func (k *knownSet) take(name string) *knownRec {
	k.mu.Lock()
	defer k.mu.Unlock()
	r := k.m[name]
	delete(k.m, name)
	return r
}

// clear wipes the plaintexts left.
func (k *knownSet) clear() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for name, r := range k.m {
		clear(r.rec.Auth)
		delete(k.m, name)
	}
}

func failed(records []RecordStatus) []RecordStatus {
	return batch.Failed(records, func(r RecordStatus) error { return r.Err })
}

// recordNames lists records for an error message.
func recordNames(records []RecordStatus) string {
	return batch.Names(records, func(r RecordStatus) string { return r.EtcdKey })
}
