package crypto

import (
	"bytes"
	"encoding/base64"

	"github.com/sessionstore/sessionstore/internal/canonjson"
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
	sc := canonjson.NewScanner(pt)
	if !sc.Lit(`{"v":`) {
		return envelope{}, false
	}
	v, ok := sc.Int()
	if !ok || int64(int(v)) != v {
		return envelope{}, false
	}
	env.Version = int(v)
	if sc.Lit(`,"ns":`) {
		if env.Namespace, ok = sc.String(); !ok || env.Namespace == "" {
			return envelope{}, false
		}
	}
	if !sc.Lit(`,"auth_type":`) {
		return envelope{}, false
	}
	if env.AuthType, ok = sc.String(); !ok {
		return envelope{}, false
	}
	if !sc.Lit(`,"seq":`) {
		return envelope{}, false
	}
	if env.Seq, ok = sc.Uint(); !ok {
		return envelope{}, false
	}
	if !sc.Lit(`,"written":`) {
		return envelope{}, false
	}
	// As encoding/json decodes it (strict RFC 3339).
	if w, ok := sc.Str(); !ok || env.Written.UnmarshalJSON(w) != nil {
		return envelope{}, false
	}
	if !sc.Lit(`,"auth":`) {
		return envelope{}, false
	}
	// The rest is <auth>,"mac":"<base64>"} and a newline. Base64 holds no
	// quote, so the last `,"mac":"` is the field's, whatever the auth
	// object holds.
	rest := bytes.TrimSuffix(sc.Rest(), []byte("\n"))
	if !bytes.HasSuffix(rest, []byte(`"}`)) {
		return envelope{}, false
	}
	rest = rest[:len(rest)-2]
	i := bytes.LastIndex(rest, []byte(`,"mac":"`))
	if i <= 0 {
		return envelope{}, false
	}
	// encoding/json's RawMessage holds no whitespace around the value,
	// and Seal writes none.
	if auth := rest[:i]; isSpace(auth[0]) || isSpace(auth[len(auth)-1]) {
		return envelope{}, false
	}
	env.Auth = bytes.Clone(rest[:i]) // pt is cleared after use
	// Exactly as appendJSON encodes it: DecodeString alone would skip
	// newlines, which encoding/json rejects in a string.
	mac := string(rest[i+len(`,"mac":"`):])
	var err error
	if env.MAC, err = base64.StdEncoding.DecodeString(mac); err != nil || base64.StdEncoding.EncodeToString(env.MAC) != mac {
		return envelope{}, false
	}
	return env, true
}
