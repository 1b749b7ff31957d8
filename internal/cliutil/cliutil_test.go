package cliutil

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"server":           "server",
		"user@example.com": "user@example.com",
		"global:all read":  "global:all read",
		"a\tb":             `"a\tb"`,
		"a\x1b[2Jb":        `"a\x1b[2Jb"`,
		"bad\xffutf8":      `"bad\xffutf8"`,
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEscapeControls(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, \"quoted\" and spaced":   "plain text, \"quoted\" and spaced",
		"open tmp/\x1b[2J.json: no such file": `open tmp/\x1b[2J.json: no such file`,
		"bell\a tab\t newline\n":              `bell\a tab\t newline\n`,
		"c1 \u009b2J del \x7f":                `c1 \u009b2J del \x7f`,
		"bad \xff\xfe utf8":                   `bad \xff\xfe utf8`,
		"ünïcode ✓ \ufffd":                    "ünïcode ✓ \ufffd",
	} {
		got := Escape(in)
		assert.Equal(t, want, got, "%q", in)
		assert.False(t, strings.ContainsFunc(got, func(r rune) bool { return r < ' ' || r >= 0x7f && r < 0xa0 }), "%q", in)
	}
}
