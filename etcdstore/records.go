package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/names"
	"github.com/sessionstore/sessionstore/internal/protocol"
)

// A Host is the heartbeat of one open Store, under <prefix>/hosts/<id>
// (ID: its lease, in hex), gone when the Store closes or after its lock
// TTL. It carries nothing secret.
type Host = protocol.Host

// RecordStatus describes one record, as Check, Promote and Retire see it
// (Store: the prefix, Location: the record's key). It holds no token.
type RecordStatus = protocol.RecordStatus

// A Record is one record as ReadRecords reads it: its status, and the
// session it holds if it opens.
type Record = protocol.Record

// Hosts returns the heartbeats of the Stores open on prefix: one per live
// Store (a process may have several), sorted by host and pid.
func Hosts(ctx context.Context, client *clientv3.Client, prefix string) ([]Host, error) {
	pfx := strings.TrimRight(prefix, "/") + "/hosts/"
	resp, err := client.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: hosts %s: %w", pfx, err)
	}
	hosts := make([]Host, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var h Host
		if err := json.Unmarshal(kv.Value, &h); err != nil {
			return nil, fmt.Errorf("etcdstore: heartbeat %s does not decode", kv.Key)
		}
		h.ID = strings.TrimPrefix(string(kv.Key), pfx)
		hosts = append(hosts, h)
	}
	protocol.SortHosts(hosts)
	return hosts, nil
}

// fleet is what the staged steps and the readers need of prefix.
func fleet(client *clientv3.Client, prefix string) *protocol.Fleet {
	b := newBackend(client, prefix, 0, slog.New(slog.DiscardHandler)) // reads only: no lease
	return &protocol.Fleet{
		Pkg:       "etcdstore",
		Namespace: prefix,
		Where:     b.Where,
		ReadAll:   b.ReadAll,
		Hosts:     func(ctx context.Context) ([]Host, error) { return Hosts(ctx, client, prefix) },
		Open: func(ctx context.Context, keyFile string, pass func() (string, error), id crypto.KeyIdentity) (*protocol.Store, error) {
			s, err := Open(ctx, client, prefix, WithKeyFile(keyFile), WithPassphrase(pass), WithKeyIdentity(id.File), WithPluginUI(id.UI))
			if err != nil {
				return nil, err
			}
			return s.Store, nil
		},
	}
}

// ReadRecords reads every record under prefix, sorted by auth type, and
// opens it with ring, for programs that only look. It changes nothing,
// takes no lease and never appears among Hosts. A record that does not
// open is returned with Err set; it cannot tell a record rolled back (a
// Store can).
func ReadRecords(ctx context.Context, client *clientv3.Client, prefix string, ring *crypto.Keyring) ([]Record, error) {
	prefix, err := readPrefix(client, prefix, ring)
	if err != nil {
		return nil, err
	}
	return fleet(client, prefix).ReadRecords(ctx, ring)
}

// ReadRecord is ReadRecords for the record of authType alone; a missing
// one is an error wrapping sessionstore.ErrNotFound.
func ReadRecord(ctx context.Context, client *clientv3.Client, prefix string, ring *crypto.Keyring, authType string) (Record, error) {
	prefix, err := readPrefix(client, prefix, ring)
	if err != nil {
		return Record{}, err
	}
	if _, err := names.Stem(authType); err != nil {
		return Record{}, err
	}
	b := newBackend(client, prefix, 0, slog.New(slog.DiscardHandler)) // reads only: no lease
	raw, err := b.Read(ctx, authType)
	if err != nil {
		return Record{}, err
	}
	if raw.Data == nil {
		return Record{}, fmt.Errorf("etcdstore: %s: %w", b.Where(authType), sessionstore.ErrNotFound)
	}
	return fleet(client, prefix).OpenRecord(raw, ring), nil
}

func readPrefix(client *clientv3.Client, prefix string, ring *crypto.Keyring) (string, error) {
	p, err := cleanPrefix("read", client, prefix)
	if err == nil && ring == nil {
		err = fmt.Errorf("etcdstore: read %s: no keyring", p)
	}
	return p, err
}
