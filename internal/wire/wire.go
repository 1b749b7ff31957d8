// Package wire is the encoding of a sessionstore.AuthObject inside a sealed
// record: encoding/json of a private type, so that AuthObject's own JSON
// form can redact its tokens. Its field names are those of every record
// ever written and must never change (testdata/golden holds one of each
// format).
package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sessionstore/sessionstore"
)

// auth is AuthObject's stored form: every field, tokens included
// (AuthObject's own JSON redacts them). A conversion, so that a field added
// to AuthObject without one here does not compile.
type auth struct {
	AccessToken   string              `json:"access_token"`
	RefreshToken  string              `json:"refresh_token,omitempty"`
	TokenType     string              `json:"token_type,omitempty"`
	Expiry        time.Time           `json:"expiry,omitzero"`
	Scope         string              `json:"scope,omitempty"`
	Ref           sessionstore.Ref    `json:"ref,omitzero"`
	TransferToken string              `json:"transfer_token,omitempty"`
	Extra         map[string]any      `json:"extra,omitempty"`
	Health        sessionstore.Health `json:"health,omitzero"`
}

// EncodeAuth returns the stored form of a. The caller clears it when done.
func EncodeAuth(a sessionstore.AuthObject) ([]byte, error) {
	return json.Marshal(auth(a))
}

// DecodeAuth reads what EncodeAuth wrote, in any version. Its error never
// quotes data.
func DecodeAuth(data []byte) (sessionstore.AuthObject, error) {
	var w auth
	if err := json.Unmarshal(data, &w); err != nil {
		// The JSON error could quote a token: say only what failed.
		return sessionstore.AuthObject{}, fmt.Errorf("auth object does not decode: %w", sessionstore.ErrTampered)
	}
	return sessionstore.AuthObject(w), nil
}

// ExpiryOf returns the expiry of the stored auth object data, or the zero
// time if it has none or does not decode. It copies no token.
func ExpiryOf(data []byte) time.Time {
	var a struct {
		Expiry time.Time `json:"expiry"`
	}
	if json.Unmarshal(data, &a) != nil {
		return time.Time{}
	}
	return a.Expiry
}

// MarkedVersion is the record format version (envelope.Record.Version) of
// a session marked as needing a new login: 3, which a reader older than
// the mark refuses instead of dropping it. Other sessions are written in
// the oldest format that holds them (0 lets crypto choose), so that older
// readers keep reading them; they skip Health.LastRefresh.
const MarkedVersion = 3

// VersionOf returns the record format version to seal a with: see
// MarkedVersion.
func VersionOf(a sessionstore.AuthObject) int {
	if !a.Health.NeedsLogin.IsZero() {
		return MarkedVersion
	}
	return 0
}
