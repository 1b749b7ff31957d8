// Package wire is the encoding of a sessionstore.AuthObject inside a sealed
// record. It is private so that AuthObject's own JSON form can redact its
// tokens; its field names are those of every record ever written and must
// never change (testdata/golden holds one of each format).
package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sessionstore/sessionstore"
)

// auth is AuthObject's stored form: every field, tokens included.
type auth struct {
	AccessToken   string           `json:"access_token"`
	RefreshToken  string           `json:"refresh_token,omitempty"`
	TokenType     string           `json:"token_type,omitempty"`
	Expiry        time.Time        `json:"expiry,omitzero"`
	Scope         string           `json:"scope,omitempty"`
	Ref           sessionstore.Ref `json:"ref,omitzero"`
	TransferToken string           `json:"transfer_token,omitempty"`
	Extra         map[string]any   `json:"extra,omitempty"`
}

// EncodeAuth returns the stored form of a. The caller clears it when done.
func EncodeAuth(a sessionstore.AuthObject) ([]byte, error) {
	w := auth(a)
	if b, ok := appendCanonical(make([]byte, 0, canonicalLen(&w)), &w); ok {
		return b, nil
	}
	return json.Marshal(w)
}

// DecodeAuth reads what EncodeAuth wrote. Its error never quotes data.
func DecodeAuth(data []byte) (sessionstore.AuthObject, error) {
	if w, ok := parseCanonical(data); ok {
		return sessionstore.AuthObject(w), nil
	}
	var w auth
	if err := json.Unmarshal(data, &w); err != nil {
		// The JSON error could quote a token: say only what failed.
		return sessionstore.AuthObject{}, fmt.Errorf("auth object does not decode: %w", sessionstore.ErrTampered)
	}
	return sessionstore.AuthObject(w), nil
}

// ExpiryOf returns the expiry of the stored auth object data, or the zero
// time if it has none or does not decode.
func ExpiryOf(data []byte) time.Time {
	if e, ok := expiryOf(data); ok {
		return e
	}
	var a struct {
		Expiry time.Time `json:"expiry"`
	}
	if json.Unmarshal(data, &a) == nil {
		return a.Expiry
	}
	return time.Time{}
}
