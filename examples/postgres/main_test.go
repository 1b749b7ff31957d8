package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The demo re-executes its binary as workers; under test that binary is
// the test binary, so TestMain plays the worker when asked to.
func TestMain(m *testing.M) {
	if id := os.Getenv(workerEnv); id != "" {
		if err := worker(id); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestDemoRuns runs the demo as "go run ./examples/postgres" does, on a
// throwaway cluster of its own, and checks that the cluster is gone after.
func TestDemoRuns(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), &out, "")
	t.Log("\n" + out.String())
	require.NoError(t, err)
	assert.Contains(t, out.String(), "4 workers started on an expired token: 1 refresh at the provider, 1 distinct access token(s)")
	assert.Contains(t, out.String(), "invalid_grant (reused token)   0")
	assert.Contains(t, out.String(), "step 3: retired 1 old key(s)")
	assert.Contains(t, out.String(), `first line "age-encryption.org/v1"`)
	assert.Contains(t, out.String(), "OK: every call succeeded")
	dir := regexp.MustCompile(`stopped the local PostgreSQL and removed (\S+)`).FindStringSubmatch(out.String())
	require.Len(t, dir, 2)
	_, err = os.Stat(dir[1])
	assert.True(t, os.IsNotExist(err), "the cluster's directory %s is left: %v", dir[1], err)
}
