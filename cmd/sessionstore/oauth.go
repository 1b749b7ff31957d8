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
	"github.com/sessionstore/sessionstore/internal/cliutil"
)

// maxOAuthSize bounds what import -oauth reads: a token response is a few
// kilobytes at most.
const maxOAuthSize = 1 << 20

// readOAuthFile reads an OAuth 2 token response (RFC 6749 section 5.1)
// from file, or stdin for "-": the session, expiring expires_in after t.
// Its errors never quote the input; the caller names the file.
func readOAuthFile(file string, stdin io.Reader, t time.Time) (sessionstore.AuthObject, error) {
	r := stdin
	if file != "-" {
		// Not a FIFO or a device, whose open or read could block.
		fi, err := os.Stat(file)
		if err != nil {
			return sessionstore.AuthObject{}, cliutil.PathErrCause(err)
		}
		if !fi.Mode().IsRegular() {
			return sessionstore.AuthObject{}, fmt.Errorf("not a regular file (%v); give - to read stdin", fi.Mode().Type())
		}
		f, err := os.Open(file)
		if err != nil {
			return sessionstore.AuthObject{}, cliutil.PathErrCause(err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxOAuthSize+1))
	defer clear(data)
	if err != nil {
		return sessionstore.AuthObject{}, cliutil.PathErrCause(err)
	}
	if len(data) > maxOAuthSize {
		return sessionstore.AuthObject{}, fmt.Errorf("more than %d bytes: not an OAuth token response", maxOAuthSize)
	}
	return parseOAuth(data, t)
}

// isOAuthFile reports whether file is a regular file holding an OAuth
// token response: a hint when it is imported as podio-js.
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

// parseOAuth parses a token response: access_token (required), and
// token_type, refresh_token, scope, expires_in (seconds, a number or a
// numeric string; 0 or none: no expiry, as x/oauth2 reads it), Podio's ref
// and transfer_token. Other fields are dropped, as FromToken drops them.
func parseOAuth(data []byte, t time.Time) (sessionstore.AuthObject, error) {
	bad := func(format string, a ...any) (sessionstore.AuthObject, error) {
		return sessionstore.AuthObject{}, fmt.Errorf("not an OAuth token response: "+format, a...)
	}
	if data = bytes.TrimSpace(data); len(data) == 0 {
		return sessionstore.AuthObject{}, errors.New("empty: not an OAuth token response")
	}
	var r struct {
		AccessToken   string          `json:"access_token"`
		TokenType     string          `json:"token_type"`
		RefreshToken  string          `json:"refresh_token"`
		Scope         string          `json:"scope"`
		TransferToken string          `json:"transfer_token"`
		ExpiresIn     json.RawMessage `json:"expires_in"`
		Ref           json.RawMessage `json:"ref"`
		Error         any             `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(&r)
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return bad("malformed JSON at byte %d", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad("malformed JSON (it ends early)")
	case errors.As(err, &typ) && typ.Field != "":
		return bad("%s is not a string", typ.Field)
	case err != nil || data[0] != '{' || dec.More():
		return bad("want one JSON object")
	}
	if r.AccessToken == "" {
		code, ok := r.Error.(string)
		switch {
		case !ok || code == "":
			return bad("no access_token")
		case oauthErrorCode.MatchString(code):
			return sessionstore.AuthObject{}, fmt.Errorf("an OAuth error response (error %s), not a token", strconv.Quote(code))
		}
		return sessionstore.AuthObject{}, errors.New("an OAuth error response, not a token")
	}
	a := sessionstore.AuthObject{AccessToken: r.AccessToken, TokenType: r.TokenType, RefreshToken: r.RefreshToken, Scope: r.Scope, TransferToken: r.TransferToken}
	if len(r.ExpiresIn) > 0 && string(r.ExpiresIn) != "null" {
		var n json.Number
		if err := json.Unmarshal(r.ExpiresIn, &n); err != nil {
			return bad("expires_in is not a number")
		}
		secs, err := n.Float64()
		switch {
		case err != nil || secs != math.Trunc(secs):
			return bad("expires_in is not a whole number of seconds")
		case secs < 0 || secs > math.MaxInt32:
			return bad("expires_in %s is out of range", n)
		case secs > 0:
			a.Expiry = t.Add(time.Duration(secs) * time.Second).UTC()
		}
	}
	if len(r.Ref) > 0 && string(r.Ref) != "null" {
		var ref struct {
			Type string      `json:"type"`
			ID   json.Number `json:"id"`
		}
		if err := json.Unmarshal(r.Ref, &ref); err != nil {
			return bad("ref is not an object with a type and an id")
		}
		id, err := ref.ID.Int64()
		if err != nil {
			return bad("ref id is not an integer")
		}
		a.Ref = sessionstore.Ref{Type: ref.Type, ID: id}
	}
	return a, nil
}
