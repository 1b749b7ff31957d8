package sessionstore_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sessionstore/sessionstore"
)

func TestValidateAuthType(t *testing.T) {
	for _, ok := range []string{"server", "client", "password", "app", "app:12345", "user@example.com",
		"../x", "日本語", strings.Repeat("x", 200)} {
		assert.NoError(t, sessionstore.ValidateAuthType(ok), "%q", ok)
	}
	for _, bad := range []string{"", "a\x00b", "\xff", strings.Repeat("x", 201), strings.Repeat("é", 101)} {
		err := sessionstore.ValidateAuthType(bad)
		assert.ErrorIs(t, err, sessionstore.ErrInvalidAuthType, "%q", bad)
	}
}
