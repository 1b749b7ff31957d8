package sessionstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"time"
)

const maxPodioJSSize = 1 << 20 // a session is a few hundred bytes

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
// (tmp/<authType>.json), to be migrated with Set. Its Expiry is the file's
// modification time plus expiresIn. An empty file or "{}" (a cleared
// session) is ErrNotFound; anything else that is not such a session is an
// error that names the file (quoted) and never quotes its contents.
func ReadPodioJSFile(path string) (AuthObject, error) {
	q := strconv.Quote(path)
	// No symlink, nothing but a regular file (a FIFO would block the
	// open), and the file opened is the one inspected.
	lfi, err := os.Lstat(path)
	if err != nil {
		return AuthObject{}, podioJSFileError(q, err)
	}
	if !lfi.Mode().IsRegular() {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s is not a regular file (%v)", q, lfi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return AuthObject{}, podioJSFileError(q, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return AuthObject{}, podioJSFileError(q, err)
	}
	if !os.SameFile(lfi, fi) {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s was replaced while it was opened", q)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPodioJSSize+1))
	if err != nil {
		return AuthObject{}, podioJSFileError(q, err)
	}
	defer clear(data)
	if len(data) > maxPodioJSSize {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s is too large", q)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s is empty (cleared): %w", q, ErrNotFound)
	}
	// An object, and only one: its fields first, to tell "{}" (cleared)
	// from an object of some other format.
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if trimmed[0] != '{' || dec.Decode(&fields) != nil || dec.More() {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s is not a session object", q)
	}
	if len(fields) == 0 {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s is cleared: %w", q, ErrNotFound)
	}
	var s podioJSSession
	if err := json.Unmarshal(trimmed, &s); err != nil {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s is not a session object", q)
	}
	if s.AccessToken == "" {
		return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s has no accessToken", q)
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
			return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s: expiresIn %v is out of range", q, secs)
		}
		a.Expiry = fi.ModTime().Add(time.Duration(secs * float64(time.Second))).UTC()
	}
	if s.Ref != nil {
		if s.Ref.ID != math.Trunc(s.Ref.ID) || math.Abs(s.Ref.ID) > 1<<53 {
			return AuthObject{}, fmt.Errorf("sessionstore: podio-js session %s: ref id is not an integer", q)
		}
		a.Ref = Ref{Type: s.Ref.Type, ID: int64(s.Ref.ID)}
	}
	return a, nil
}

// podioJSFileError replaces a *fs.PathError's raw path with q, the quoted
// one, keeping what it wraps.
func podioJSFileError(q string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("sessionstore: podio-js session %s: %w", q, err)
}
