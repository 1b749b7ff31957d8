package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/wire"
)

// A Record is one record as ReadRecords reads it: its status, as Check
// reports it, and the session it holds when it opens (Err nil).
type Record struct {
	RecordStatus
	Auth sessionstore.AuthObject `json:"-"` // zero when Err is set
}

// ReadRecords reads every record under prefix and opens it with ring, for
// programs that only look, such as an operator's listing. Unlike Open it
// takes no lease and writes no heartbeat, so it never appears among the
// live Hosts that a rotation checks; it changes nothing. A record that does
// not open (sealed to another key, tampered, corrupt) is returned with Err
// set, never skipped; keys that are not records of this store are skipped,
// as List skips them. The records are sorted by auth type. Having seen no
// earlier version, it cannot tell a record rolled back (a Store can).
func ReadRecords(ctx context.Context, client *clientv3.Client, prefix string, ring *crypto.Keyring) ([]Record, error) {
	prefix, err := readPrefix(client, prefix, ring)
	if err != nil {
		return nil, err
	}
	pfx := recordsPrefix(prefix)
	resp, err := client.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: read %s: %w", pfx, ctxErr(ctx, err))
	}
	recs := make([]Record, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		name, ok := nameOf(strings.TrimPrefix(string(kv.Key), pfx))
		if !ok {
			continue // not a record of this store, as List
		}
		recs = append(recs, openRecord(prefix, name, kv, ring))
	}
	slices.SortFunc(recs, func(a, b Record) int { return strings.Compare(a.AuthType, b.AuthType) })
	return recs, nil
}

// ReadRecord is ReadRecords for the record of authType alone. A missing
// record is an error wrapping sessionstore.ErrNotFound; one that does not
// open is returned with Err set.
func ReadRecord(ctx context.Context, client *clientv3.Client, prefix string, ring *crypto.Keyring, authType string) (Record, error) {
	prefix, err := readPrefix(client, prefix, ring)
	if err != nil {
		return Record{}, err
	}
	stem, err := stemOf(authType)
	if err != nil {
		return Record{}, err
	}
	key := recordsPrefix(prefix) + stem
	resp, err := client.Get(ctx, key)
	if err != nil {
		return Record{}, fmt.Errorf("etcdstore: read %s: %w", key, ctxErr(ctx, err))
	}
	if len(resp.Kvs) == 0 {
		return Record{}, fmt.Errorf("etcdstore: %s: %w", key, sessionstore.ErrNotFound)
	}
	return openRecord(prefix, authType, resp.Kvs[0], ring), nil
}

// readPrefix checks the arguments of a read and returns the prefix without
// its trailing "/".
func readPrefix(client *clientv3.Client, prefix string, ring *crypto.Keyring) (string, error) {
	switch p := strings.TrimRight(prefix, "/"); {
	case client == nil:
		return "", fmt.Errorf("etcdstore: read %q: no etcd client", prefix)
	case p == "":
		return "", errors.New("etcdstore: read: the prefix is empty")
	case ring == nil:
		return "", fmt.Errorf("etcdstore: read %s: no keyring", p)
	default:
		return p, nil
	}
}

// openRecord opens the record of name that kv holds.
func openRecord(prefix, name string, kv *mvccpb.KeyValue, ring *crypto.Keyring) Record {
	r := Record{RecordStatus: RecordStatus{Prefix: prefix, AuthType: name, EtcdKey: string(kv.Key), Key: -1}}
	rec, idx, err := ring.OpenIn(kv.Value, prefix, name)
	if err == nil {
		defer clear(rec.Auth)
		r.Auth, err = wire.DecodeAuth(rec.Auth)
	}
	if err != nil {
		r.Auth = sessionstore.AuthObject{}
		r.setErr(fmt.Errorf("etcdstore: %s: %w", r.EtcdKey, err))
		return r
	}
	r.Key, r.PublicKey, r.Seq, r.Written, r.Expiry = idx, ring.PublicKey(idx), rec.Seq, rec.Written, r.Auth.Expiry
	return r
}
