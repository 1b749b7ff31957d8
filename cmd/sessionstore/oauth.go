package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/sessionstore/sessionstore"
)

// maxOAuthSize bounds what import -oauth reads: a token response is a few
// kilobytes at most.
const maxOAuthSize = 1 << 20

// readOAuthFile reads a standard OAuth 2 token response (RFC 6749 section
// 5.1) from file, or from stdin if file is "-", and returns its session,
// expiring expires_in seconds after t. Its errors never quote the input;
// the caller names the file.
func readOAuthFile(file string, stdin io.Reader, t time.Time) (sessionstore.AuthObject, error) {
	r := stdin
	if file != "-" {
		// Not a FIFO or a device, whose open or read could block: stdin
		// ("-") is the way to pipe a response in.
		fi, err := os.Stat(file)
		if err != nil {
			return sessionstore.AuthObject{}, pathErrCause(err)
		}
		if !fi.Mode().IsRegular() {
			return sessionstore.AuthObject{}, fmt.Errorf("not a regular file (%v); give - to read stdin", fi.Mode().Type())
		}
		f, err := os.Open(file)
		if err != nil {
			return sessionstore.AuthObject{}, pathErrCause(err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxOAuthSize+1))
	defer clear(data)
	if err != nil {
		return sessionstore.AuthObject{}, pathErrCause(err)
	}
	if len(data) > maxOAuthSize {
		return sessionstore.AuthObject{}, fmt.Errorf("more than %d bytes: not an OAuth token response", maxOAuthSize)
	}
	return parseOAuth(data, t)
}

// isOAuthFile reports whether file is a regular file that holds an OAuth
// token response, for a hint when it is imported as another format.
func isOAuthFile(file string) bool {
	fi, err := os.Lstat(file)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	_, err = readOAuthFile(file, nil, time.Time{})
	return err == nil
}

// oauthErrorCode is the form of an OAuth error code (RFC 6749 section
// 5.2), the only part of an error response worth repeating.
var oauthErrorCode = regexp.MustCompile(`^[a-z_]{1,64}$`)

// parseOAuth parses a token response: an object with access_token (a
// non-empty string), and optionally token_type, refresh_token, scope,
// expires_in (seconds, a number or a numeric string, as some providers
// send it; 0 or none: no expiry, as golang.org/x/oauth2 reads it) and
// Podio's ref and transfer_token. Other fields are not kept, as
// sessionstore.FromToken keeps none.
func parseOAuth(data []byte, t time.Time) (sessionstore.AuthObject, error) {
	const notOAuth = "not an OAuth token response"
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return sessionstore.AuthObject{}, errors.New("empty: " + notOAuth)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	err := dec.Decode(&fields)
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return sessionstore.AuthObject{}, fmt.Errorf("%s: malformed JSON at byte %d", notOAuth, syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return sessionstore.AuthObject{}, fmt.Errorf("%s: malformed JSON (it ends early)", notOAuth)
	case err != nil || fields == nil || dec.More():
		return sessionstore.AuthObject{}, fmt.Errorf("%s: want one JSON object", notOAuth)
	}
	str := func(k string) (string, error) {
		raw, ok := fields[k]
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%s: %s is not a string", notOAuth, k)
		}
		return s, nil
	}
	var a sessionstore.AuthObject
	if a.AccessToken, err = str("access_token"); err != nil {
		return sessionstore.AuthObject{}, err
	}
	if a.AccessToken == "" {
		if code, err := str("error"); err == nil && code != "" {
			if oauthErrorCode.MatchString(code) {
				return sessionstore.AuthObject{}, fmt.Errorf("an OAuth error response (error %s), not a token", strconv.Quote(code))
			}
			return sessionstore.AuthObject{}, errors.New("an OAuth error response, not a token")
		}
		return sessionstore.AuthObject{}, fmt.Errorf("%s: no access_token", notOAuth)
	}
	for k, dst := range map[string]*string{
		"token_type":     &a.TokenType,
		"refresh_token":  &a.RefreshToken,
		"scope":          &a.Scope,
		"transfer_token": &a.TransferToken,
	} {
		if *dst, err = str(k); err != nil {
			return sessionstore.AuthObject{}, err
		}
	}
	if raw, ok := fields["expires_in"]; ok && string(raw) != "null" {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return sessionstore.AuthObject{}, fmt.Errorf("%s: expires_in is not a number", notOAuth)
		}
		secs, err := n.Float64()
		switch {
		case err != nil || secs != math.Trunc(secs):
			return sessionstore.AuthObject{}, fmt.Errorf("%s: expires_in is not a whole number of seconds", notOAuth)
		case secs < 0 || secs > math.MaxInt32:
			return sessionstore.AuthObject{}, fmt.Errorf("%s: expires_in %s is out of range", notOAuth, n)
		case secs > 0:
			a.Expiry = t.Add(time.Duration(secs) * time.Second).UTC()
		}
	}
	if raw, ok := fields["ref"]; ok && string(raw) != "null" {
		var ref struct {
			Type string      `json:"type"`
			ID   json.Number `json:"id"`
		}
		if err := json.Unmarshal(raw, &ref); err != nil {
			return sessionstore.AuthObject{}, fmt.Errorf("%s: ref is not an object with a type and an id", notOAuth)
		}
		id, err := ref.ID.Int64()
		if err != nil {
			return sessionstore.AuthObject{}, fmt.Errorf("%s: ref id is not an integer", notOAuth)
		}
		a.Ref = sessionstore.Ref{Type: ref.Type, ID: id}
	}
	return a, nil
}
