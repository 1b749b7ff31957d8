// Package canonjson scans the JSON this project writes itself (a record's
// envelope, a stored auth object) when it stands exactly as written:
// fields in their order, no whitespace, strings without escapes. Callers
// parse that form without reflection and hand anything else to
// encoding/json, and their fuzz tests check that both agree.
package canonjson

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// A Scanner reads its input from the front.
type Scanner struct {
	p []byte
}

// NewScanner returns a Scanner of data.
func NewScanner(data []byte) *Scanner { return &Scanner{p: data} }

// Rest returns what is left to scan.
func (s *Scanner) Rest() []byte { return s.p }

// Lit consumes lit if the input goes on with it.
func (s *Scanner) Lit(lit string) bool {
	if !bytes.HasPrefix(s.p, []byte(lit)) {
		return false
	}
	s.p = s.p[len(lit):]
	return true
}

// Str consumes a JSON string that encoding/json decodes to its bytes as
// they stand (valid UTF-8, no escape, no control character), and returns
// it quoted; ok is false, consuming nothing, for any other string.
func (s *Scanner) Str() (quoted []byte, ok bool) {
	if len(s.p) == 0 || s.p[0] != '"' {
		return nil, false
	}
	end := bytes.IndexByte(s.p[1:], '"')
	if end < 0 {
		return nil, false
	}
	body := s.p[1 : 1+end]
	if bytes.IndexByte(body, '\\') >= 0 || !utf8.Valid(body) {
		return nil, false
	}
	for _, c := range body {
		if c < 0x20 {
			return nil, false
		}
	}
	quoted, s.p = s.p[:end+2], s.p[end+2:]
	return quoted, true
}

// String is Str, unquoted and copied.
func (s *Scanner) String() (string, bool) {
	q, ok := s.Str()
	if !ok {
		return "", false
	}
	return string(q[1 : len(q)-1]), true
}

// Uint consumes a JSON integer without sign or leading zero that fits a
// uint64.
func (s *Scanner) Uint() (uint64, bool) {
	n := digits(s.p)
	if n == 0 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s.p[:n]), 10, 64)
	if err != nil {
		return 0, false
	}
	s.p = s.p[n:]
	return v, true
}

// Int consumes a JSON integer (no leading zero) that fits an int64.
func (s *Scanner) Int() (int64, bool) {
	sign := 0
	if len(s.p) > 0 && s.p[0] == '-' {
		sign = 1
	}
	n := digits(s.p[sign:])
	if n == 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(s.p[:sign+n]), 10, 64)
	if err != nil {
		return 0, false
	}
	s.p = s.p[sign+n:]
	return v, true
}

// digits returns the length of the JSON digits p starts with: 0 if none,
// or if they have a leading zero.
func digits(p []byte) int {
	n := 0
	for n < len(p) && '0' <= p[n] && p[n] <= '9' {
		n++
	}
	if n > 1 && p[0] == '0' {
		return 0
	}
	return n
}
