package etcdstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/etcdstore"
	"github.com/sessionstore/sessionstore/internal/etcdtest"
)

// The README's role setup, through the same API etcdctl uses: a user whose
// role grants read and write on the service's prefix alone can run a Store
// there (records, locks, heartbeats), and cannot read outside it.
func TestRoleConfinedToPrefix(t *testing.T) {
	ctx := ctxT(t)
	m, err := etcdtest.StartSingle("auth", t.TempDir(), 30*time.Second)
	require.NoError(t, err)
	defer m.Close()
	clientURL := m.Endpoint

	root := etcdtest.NewClient(t, clientURL)
	const prefix = "/sessionstore/prod"
	// etcdctl user add root; etcdctl role add sessionstore-prod;
	// etcdctl role grant-permission sessionstore-prod --prefix=true readwrite /sessionstore/prod/
	// etcdctl user add sessionstore-prod; etcdctl user grant-role sessionstore-prod sessionstore-prod;
	// etcdctl auth enable
	for _, step := range []func() error{
		func() error { _, err := root.UserAdd(ctx, "root", "root-password"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.RoleAdd(ctx, "sessionstore-prod"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "sessionstore-prod", prefix+"/", clientv3.GetPrefixRangeEnd(prefix+"/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := root.UserAdd(ctx, "sessionstore-prod", "service-password"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "sessionstore-prod", "sessionstore-prod"); return err },
		func() error { _, err := root.Put(ctx, "/other/secret", "x"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	} {
		require.NoError(t, step())
	}

	svc, err := clientv3.New(clientv3.Config{Endpoints: []string{clientURL}, Username: "sessionstore-prod", Password: "service-password",
		DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer svc.Close()
	s1 := openOn(t, svc, prefix, etcdstore.WithKeyFile(newKeyFile(t)))
	require.NoError(t, s1.Set(ctx, "server", sessionstore.AuthObject{AccessToken: "a"}))
	_, err = s1.Update(ctx, "server", increment)
	require.NoError(t, err, "locks and fenced writes work within the prefix")
	hosts, err := etcdstore.Hosts(ctx, svc, prefix)
	require.NoError(t, err)
	assert.Len(t, hosts, 1, "the heartbeat too")
	_, err = svc.Get(ctx, "/other/secret")
	assert.Error(t, err, "nothing outside the prefix")
	_, err = etcdstore.Open(ctx, svc, "/sessionstore/staging", etcdstore.WithKeyFile(newKeyFile(t)))
	assert.Error(t, err, "no Store on another prefix")
}
