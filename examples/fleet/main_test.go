package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/internal/etcdtest"
)

// The demo re-executes its binary as etcd members and hosts; under test
// that binary is the test binary, so TestMain plays them when asked to.
func TestMain(m *testing.M) {
	etcdtest.MaybeRunMember()
	if id := os.Getenv(workerEnv); id != "" {
		if err := worker(id, os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestDemoRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-member etcd cluster and 4 hosts for several seconds; go run ./examples/fleet shows the same")
	}
	var out bytes.Buffer
	err := run(&out)
	t.Log("\n" + out.String())
	require.NoError(t, err)
	assert.Contains(t, out.String(), "4 hosts started on an expired token: 1 refresh at the provider, 1 distinct access token(s)")
	assert.Contains(t, out.String(), "invalid_grant (reused token)   0")
	assert.Contains(t, out.String(), `first line "age-encryption.org/v1"`)
	assert.Contains(t, out.String(), "OK: no refresh token was used twice")
}
