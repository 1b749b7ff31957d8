package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// heartbeatEvery is how often a Store rereads its key file (publishing a
// new heartbeat when its keys changed) and renews a lease that ended.
const heartbeatEvery = 2 * time.Second

// A Host is the heartbeat of one open Store, under <prefix>/hosts/<id>,
// bound to the Store's lease: it disappears when the Store closes or its
// process dies (after the lock TTL). It carries nothing secret.
type Host struct {
	ID   string    `json:"-"`    // the key's last element: the lease, in hex
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

// putHeartbeat writes the Store's heartbeat on sess's lease.
func (s *Store) putHeartbeat(ctx context.Context, sess *session) error {
	host, _ := os.Hostname()
	hb := Host{Host: host, PID: os.Getpid(), Keys: s.keys.Ring().Fingerprints(), Time: time.Now().UTC()}
	data, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("etcdstore: heartbeat: %w", err)
	}
	key := hostsPrefix(s.prefix) + fmt.Sprintf("%016x", int64(sess.Lease()))
	if _, err := s.client.Put(ctx, key, string(data), clientv3.WithLease(sess.Lease())); err != nil {
		return fmt.Errorf("etcdstore: heartbeat %s: %w", key, ctxErr(ctx, err))
	}
	return nil
}

// heartbeatLoop rereads the key file every heartbeatEvery, publishing a
// new heartbeat when the keys changed (a rotation step was distributed),
// and renews the lease if it ended, until Close.
func (s *Store) heartbeatLoop() {
	defer s.wg.Done()
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.bg, heartbeatEvery)
		changed, err := s.keys.Reload()
		if err != nil {
			s.log.Warn("sessionstore: rereading the key file", "err", err)
		}
		sess, err := s.session(ctx) // a new one, with its heartbeat, if the lease ended
		if err == nil && changed {
			err = s.putHeartbeat(ctx, sess)
		}
		if err != nil && s.bg.Err() == nil {
			s.log.Warn("sessionstore: etcd heartbeat", "prefix", s.prefix, "err", err)
		}
		cancel()
	}
}

// Hosts returns the heartbeats of the Stores open on prefix: one per live
// Store (a process may have several), sorted by host and pid.
func Hosts(ctx context.Context, client *clientv3.Client, prefix string) ([]Host, error) {
	pfx := hostsPrefix(strings.TrimRight(prefix, "/"))
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
	slices.SortFunc(hosts, func(a, b Host) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return a.PID - b.PID
	})
	return hosts, nil
}
