package crypto

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"unicode/utf8"
)

// parseCanonical parses a record's plaintext if it is exactly what
// appendJSON writes (the only form Seal has ever written), without
// reflection: ok is false for anything else, which verify then decodes
// with encoding/json. The two agree on every input whose auth object is
// valid JSON (FuzzCanonicalParse); the auth object is not validated here
// (a scan as long as the decoding that follows): verify accepts this form
// only with a MAC that verifies, that is as Seal wrote it, and Seal takes
// only valid JSON.
func parseCanonical(pt []byte) (env envelope, ok bool) {
	p := pt
	eat := func(lit string) bool {
		if !bytes.HasPrefix(p, []byte(lit)) {
			return false
		}
		p = p[len(lit):]
		return true
	}
	digits := func() (string, bool) {
		n := 0
		for n < len(p) && p[n] >= '0' && p[n] <= '9' {
			n++
		}
		if n == 0 || n > 20 || (n > 1 && p[0] == '0') {
			return "", false
		}
		s := string(p[:n])
		p = p[n:]
		return s, true
	}
	// str reads a JSON string without escapes (one with any is left to
	// encoding/json).
	str := func() (string, bool) {
		if len(p) == 0 || p[0] != '"' {
			return "", false
		}
		end := bytes.IndexByte(p[1:], '"')
		if end < 0 {
			return "", false
		}
		s := p[1 : 1+end]
		if bytes.IndexByte(s, '\\') >= 0 || !utf8.Valid(s) {
			return "", false
		}
		for _, c := range s {
			if c < 0x20 {
				return "", false
			}
		}
		p = p[end+2:]
		return string(s), true
	}

	if !eat(`{"v":`) {
		return envelope{}, false
	}
	v, ok := digits()
	if !ok {
		return envelope{}, false
	}
	version, err := strconv.Atoi(v)
	if err != nil {
		return envelope{}, false
	}
	env.Version = version
	if eat(`,"ns":`) {
		if env.Namespace, ok = str(); !ok || env.Namespace == "" {
			return envelope{}, false
		}
	}
	if !eat(`,"auth_type":`) {
		return envelope{}, false
	}
	if env.AuthType, ok = str(); !ok {
		return envelope{}, false
	}
	if !eat(`,"seq":`) {
		return envelope{}, false
	}
	seq, ok := digits()
	if !ok {
		return envelope{}, false
	}
	if env.Seq, err = strconv.ParseUint(seq, 10, 64); err != nil {
		return envelope{}, false
	}
	if !eat(`,"written":`) {
		return envelope{}, false
	}
	start := p
	if _, ok := str(); !ok {
		return envelope{}, false
	}
	// As encoding/json decodes it (strict RFC 3339).
	if err := env.Written.UnmarshalJSON(start[:len(start)-len(p)]); err != nil {
		return envelope{}, false
	}
	if !eat(`,"auth":`) {
		return envelope{}, false
	}
	// The rest is <auth>,"mac":"<base64>"} and a newline. Base64 holds no
	// quote, so the last `,"mac":"` is the field's, whatever the auth
	// object holds.
	rest := bytes.TrimSuffix(p, []byte("\n"))
	if !bytes.HasSuffix(rest, []byte(`"}`)) {
		return envelope{}, false
	}
	rest = rest[:len(rest)-2]
	i := bytes.LastIndex(rest, []byte(`,"mac":"`))
	if i <= 0 {
		return envelope{}, false
	}
	env.Auth = bytes.Clone(rest[:i]) // pt is cleared after use
	if env.MAC, err = base64.StdEncoding.DecodeString(string(rest[i+len(`,"mac":"`):])); err != nil {
		return envelope{}, false
	}
	return env, true
}
