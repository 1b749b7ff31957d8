// Package cliutil is what the commands rekey and sessionstore share.
package cliutil

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/crypto"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// A Command is a command's name, usage text and outputs.
type Command struct {
	Name, Usage    string
	Stdout, Stderr io.Writer
	Raw            bool // print messages as they are, not Escape'd (rekey's may span lines)
}

// UsageError reports a usage error and returns exit code 2.
func (c Command) UsageError(format string, a ...any) int {
	fmt.Fprintf(c.Stderr, "%s: error: %s\n", c.Name, c.text(fmt.Sprintf(format, a...)))
	fmt.Fprintf(c.Stderr, "%s: run \"%s -h\" for usage\n", c.Name, c.Name)
	return 2
}

// Fail reports err and returns exit code 1.
func (c Command) Fail(err error) int {
	fmt.Fprintf(c.Stderr, "%s: error: %s\n", c.Name, c.ErrorText(err))
	return 1
}

// ErrorText is err's message without a library's "NAME: " prefix, its
// control characters escaped (a library's message may hold a path raw).
func (c Command) ErrorText(err error) string {
	return c.text(strings.TrimPrefix(err.Error(), c.Name+": "))
}

func (c Command) text(s string) string {
	if c.Raw {
		return s
	}
	return Escape(s)
}

// Parsed handles fs.Parse's error: unless ok, return code (-h prints the
// usage: 0; a bad flag: 2).
func (c Command) Parsed(err error) (code int, ok bool) {
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(c.Stdout, c.Usage)
		return 0, false
	case err != nil:
		return c.UsageError("%v", err), false
	}
	return 0, true
}

// KeyFile sets an empty *keyFile to crypto.DefaultKeyFile; it reports a
// usage error (exit 2) and returns false when there is none.
func (c Command) KeyFile(keyFile *string) bool {
	var err error
	if *keyFile == "" {
		if *keyFile, err = crypto.DefaultKeyFile(); err != nil {
			c.UsageError("no -key given, and neither $%s nor $CREDENTIALS_DIRECTORY is set; make a key with: rekey -init -key FILE", crypto.KeyFileEnv)
		}
	}
	return err == nil
}

// Visited returns the names of the flags given on the command line.
func Visited(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// ReadSecretLine reads the first line of the file at path, a secret (what
// names it in errors, which quote path). The file is trusted like a key
// file: a regular file, not a symlink, owned by this user (or root) and
// readable by nobody else; else the error wraps ErrInsecurePermissions.
func ReadSecretLine(what, path string) (string, error) {
	q := strconv.Quote(path)
	data, _, err := fsutil.ReadRegularChecked(path, 64<<10, func(fi fs.FileInfo) error { return fsutil.CheckPrivateFile(q, fi) })
	defer clear(data)
	switch {
	case errors.Is(err, fsutil.ErrSymlink):
		return "", fmt.Errorf("%s %s is a symlink, not followed: %w", what, q, sessionstore.ErrInsecurePermissions)
	case errors.Is(err, sessionstore.ErrInsecurePermissions):
		return "", fmt.Errorf("%s %w", what, err)
	case errors.Is(err, fsutil.ErrTooLarge):
		return "", fmt.Errorf("%s %s: %w", what, q, fsutil.ErrTooLarge)
	case err != nil:
		return "", fmt.Errorf("%s %s: %w", what, q, PathErrCause(err))
	}
	line, _, _ := strings.Cut(string(data), "\n")
	if line = strings.TrimSuffix(line, "\r"); line == "" {
		return "", fmt.Errorf("%s %s: its first line is empty", what, q)
	}
	return line, nil
}

// Passphrase returns a function that reads the passphrase file at path
// once; nil for no path.
func Passphrase(path string) func() (string, error) {
	if path == "" {
		return nil
	}
	return sync.OnceValues(func() (string, error) { return ReadSecretLine("passphrase file", path) })
}

// IsTerminal reports whether w is a terminal (a character device).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Version is the module version the command was built at.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(unknown)"
}

// PathErrCause returns what a *fs.PathError wraps (its message holds the
// path raw; the caller quotes it), else err.
func PathErrCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Clean quotes s if it holds anything that could garble a line of output
// or a terminal (control characters, tabs, invalid UTF-8).
func Clean(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r == utf8.RuneError || r != ' ' && !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// Escape writes every control character and invalid byte of s as a Go
// string literal would ("\x1b", "\t", "\xff"), the rest as it is.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == ' ' || unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}
