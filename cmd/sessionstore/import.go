package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/cliutil"
)

// progressMin is how many files an import needs for a progress line.
const progressMin = 20

// importResult is one line of import -json output.
type importResult struct {
	File   string `json:"file"` // "-" for stdin
	Name   string `json:"name,omitempty"`
	Result string `json:"result"` // imported, skipped, failed
	Reason string `json:"reason,omitempty"`
}

func runImport(ctx context.Context, b *backend, o *options) int {
	prog := &progress{w: o.Stderr, total: len(o.args), on: o.progressOK && len(o.args) >= progressMin}
	count := map[string]int{}
	enc := json.NewEncoder(o.Stdout)
	for i, file := range o.args {
		if ctx.Err() != nil {
			prog.clear()
			return o.Fail(fmt.Errorf("interrupted after %d of %d files", i, len(o.args)))
		}
		res := importOne(ctx, b, file, o)
		prog.clear()
		count[res.Result]++
		switch {
		case o.jsonOut:
			enc.Encode(res)
		case res.Result == "failed":
			fmt.Fprintf(o.Stderr, "sessionstore: error: %s: %s\n", fileLabel(file), cliutil.Escape(res.Reason))
		case res.Result == "skipped":
			fmt.Fprintf(o.Stdout, "skipped  %s: %s\n", fileLabel(file), cliutil.Escape(res.Reason))
		default:
			fmt.Fprintf(o.Stdout, "imported %s as %s\n", fileLabel(file), strconv.Quote(res.Name))
		}
		prog.show(i + 1)
	}
	if !o.jsonOut {
		fmt.Fprintf(o.Stdout, "%d of %d files imported, %d skipped, %d failed\n", count["imported"], len(o.args), count["skipped"], count["failed"])
	}
	if count["failed"] > 0 {
		return o.Fail(fmt.Errorf("%d of %d files not imported", count["failed"], len(o.args)))
	}
	return 0
}

// fileLabel names a file in output: quoted, or stdin for "-".
func fileLabel(file string) string {
	if file == "-" {
		return "stdin"
	}
	return strconv.Quote(file)
}

func importOne(ctx context.Context, b *backend, file string, o *options) importResult {
	res := importResult{File: file, Result: "failed"}
	name := o.name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(file), ".json")
	}
	if err := sessionstore.ValidateAuthType(name); err != nil {
		res.Reason = fmt.Sprintf("%s is not a session name (%v); give one with -name", strconv.Quote(name), err)
		return res
	}
	res.Name = name
	var a sessionstore.AuthObject
	var err error
	if o.oauth {
		a, err = readOAuthFile(file, o.stdin, now())
	} else {
		a, err = sessionstore.ReadPodioJSFile(file)
		if errors.Is(err, sessionstore.ErrNotFound) {
			res.Result, res.Reason = "skipped", "no session in it (empty or cleared)"
			return res
		}
		if err != nil {
			if _, oerr := readOAuthFile(file, nil, time.Time{}); oerr == nil {
				err = fmt.Errorf("%w; it is an OAuth token response: import it with -oauth -name NAME", err)
			}
		}
	}
	if err == nil {
		err = b.put(ctx, name, a, o.force)
	}
	switch {
	case errors.Is(err, errExists):
		res.Reason = fmt.Sprintf("a session %s is already stored; -force replaces it", strconv.Quote(name))
	case !o.force && (errors.Is(err, sessionstore.ErrWrongKey) || errors.Is(err, sessionstore.ErrTampered) || errors.Is(err, sessionstore.ErrRollback)):
		res.Reason = fmt.Sprintf("session %s is stored but does not open (%v); -force replaces it", strconv.Quote(name), err)
	case err != nil:
		res.Reason = strings.TrimPrefix(err.Error(), "sessionstore: ")
	default:
		res.Result = "imported"
	}
	return res
}

// progress is a line on a terminal, rewritten in place during an import.
type progress struct {
	w     io.Writer
	total int
	on    bool
	drawn int // length of the line on screen
}

// show draws the line, except for the last file: the summary follows.
func (p *progress) show(done int) {
	if p.on && done < p.total {
		line := fmt.Sprintf("sessionstore: import %d/%d", done, p.total)
		fmt.Fprint(p.w, "\r"+line)
		p.drawn = len(line)
	}
}

// clear erases the line before other output.
func (p *progress) clear() {
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.drawn))
		p.drawn = 0
	}
}

// maxOAuthSize bounds what import -oauth reads (a response is a few KiB).
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

// oauthErrorCode is the form of an OAuth error code (RFC 6749 section
// 5.2), the only part of an error response worth repeating.
var oauthErrorCode = regexp.MustCompile(`^[a-z_]{1,64}$`)

// parseOAuth parses a token response: access_token (required), and
// token_type, refresh_token, scope, expires_in (seconds, a number or a
// numeric string; 0 or none: no expiry, as x/oauth2 reads it), Podio's ref
// and transfer_token. Other fields are dropped, as FromToken drops them.
// exactNames returns the JSON object data with only the members named
// (RFC 6749's names are case-sensitive; encoding/json matches a struct's
// fields regardless of case), or data itself if it is not one object.
func exactNames(data []byte, names ...string) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || m == nil {
		return data
	}
	maps.DeleteFunc(m, func(k string, _ json.RawMessage) bool { return !slices.Contains(names, k) })
	out, err := json.Marshal(m)
	if err != nil {
		return data
	}
	return out
}

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
	dec := json.NewDecoder(bytes.NewReader(exactNames(data, "access_token", "token_type", "refresh_token",
		"scope", "transfer_token", "expires_in", "ref", "error")))
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
