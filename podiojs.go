package sessionstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// maxPodioJSSize bounds what ReadPodioJSFile reads: a session is a few
// hundred bytes.
const maxPodioJSSize = 1 << 20

// podioJSSession is the object podio-js's file session store writes with
// JSON.stringify: camelCase, and an expiry relative to the write.
type podioJSSession struct {
	AccessToken  string   `json:"accessToken"`
	RefreshToken string   `json:"refreshToken"`
	TokenType    string   `json:"tokenType"`
	ExpiresIn    *float64 `json:"expiresIn"`
	Ref          *struct {
		Type string  `json:"type"`
		ID   float64 `json:"id"`
	} `json:"ref"`
	TransferToken string `json:"transferToken"`
}

// ReadPodioJSFile reads a session file of podio-js's file session store
// (tmp/<authType>.json: plaintext, camelCase, expiresIn in seconds) so
// that it can be migrated with Set. Its Expiry is the file's modification
// time plus expiresIn. An empty file or "{}" (a cleared session) is
// ErrNotFound; anything else that is not such a session is an error that
// never quotes the file's contents.
func ReadPodioJSFile(path string) (AuthObject, error) {
	// Refuse a symlink or anything but a regular file before opening (a
	// FIFO would block the open), and check after that the file opened is
	// the one inspected.
	lfi, err := os.Lstat(path)
	if err != nil {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session: %w", err)
	}
	if !lfi.Mode().IsRegular() {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session: %s is not a regular file (%v)", path, lfi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session: %w", err)
	}
	if !os.SameFile(lfi, fi) {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session: %s was replaced while it was opened", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPodioJSSize+1))
	if err != nil {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session: %w", err)
	}
	defer clear(data)
	if len(data) > maxPodioJSSize {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session: %s is too large", path)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("{}")) {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s is cleared: %w", path, ErrNotFound)
	}
	var s podioJSSession
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&s); err != nil || dec.More() {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s is not a session object", path)
	}
	if s.AccessToken == "" {
		if s.RefreshToken == "" {
			return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s holds no token: %w", path, ErrNotFound)
		}
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s has a refresh token but no access token", path)
	}
	a := AuthObject{
		AccessToken:   s.AccessToken,
		RefreshToken:  s.RefreshToken,
		TokenType:     s.TokenType,
		TransferToken: s.TransferToken,
	}
	if s.ExpiresIn != nil {
		secs := *s.ExpiresIn
		if secs < 0 || secs > math.MaxInt32 || math.IsNaN(secs) {
			return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s: expiresIn %v is out of range", path, secs)
		}
		a.Expiry = fi.ModTime().Add(time.Duration(secs * float64(time.Second))).UTC()
	}
	if s.Ref != nil {
		if s.Ref.ID != math.Trunc(s.Ref.ID) || math.Abs(s.Ref.ID) > 1<<53 {
			return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s: ref id is not an integer", path)
		}
		a.Ref = Ref{Type: s.Ref.Type, ID: int64(s.Ref.ID)}
	}
	return a, nil
}
