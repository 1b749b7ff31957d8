package envelope_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/envelope"
)

// Version 3 is written only when asked for (a session marked as needing a
// new login), with or without a namespace, binds what versions 1 and 2
// bind, and survives a reseal.
func TestSealVersion3(t *testing.T) {
	k, err := crypto.GenerateKeyring(false)
	require.NoError(t, err)
	for _, ns := range []string{"", "/sessionstore/prod"} {
		rec := testRecord()
		rec.Namespace, rec.Version = ns, 3
		ct, err := envelope.Seal(k, rec)
		require.NoError(t, err)
		got, _, err := envelope.Open(k, ct, ns, "server")
		require.NoError(t, err, "namespace %q", ns)
		assert.Equal(t, 3, got.Version)
		assert.Equal(t, ns, got.Namespace)
		assert.JSONEq(t, string(testRecord().Auth), string(got.Auth))

		for _, c := range []struct{ ns, name string }{
			{"/sessionstore/other", "server"}, {ns + "x", "server"}, {ns, "client"},
		} {
			_, _, err := envelope.Open(k, ct, c.ns, c.name)
			assert.ErrorIs(t, err, sessionstore.ErrTampered, "sealed for %q, opened in %q as %q", ns, c.ns, c.name)
		}

		got.Seq++
		again, err := envelope.Seal(k, got)
		require.NoError(t, err)
		resealed, _, err := envelope.Open(k, again, ns, "server")
		require.NoError(t, err)
		assert.Equal(t, 3, resealed.Version, "a reseal keeps the version")
	}

	for v, want := range map[int]int{0: 1, 1: 1, 2: 1} {
		rec := testRecord()
		rec.Version = v
		ct, err := envelope.Seal(k, rec)
		require.NoError(t, err)
		got, _, err := envelope.Open(k, ct, "", "server")
		require.NoError(t, err)
		assert.Equal(t, want, got.Version, "asked for %d", v)
	}

	rec := testRecord()
	rec.Version = envelope.FormatVersion + 1
	_, err = envelope.Seal(k, rec)
	assert.Error(t, err, "a version this code does not know")
}
