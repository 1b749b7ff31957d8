// Package cliutil is what the commands rekey and sessionstore share: the
// passphrase file, terminal detection and the version string.
package cliutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/fsutil"
)

// ReadPassphrase reads the first line of the passphrase file at path. The
// file is trusted exactly like a key file: a regular file, not a symlink,
// owned by this user (or root) and readable by nobody else; otherwise the
// error wraps sessionstore.ErrInsecurePermissions.
func ReadPassphrase(path string) (string, error) {
	f, err := fsutil.OpenNoFollow(path)
	if err != nil {
		if errors.Is(err, fsutil.ErrSymlink) {
			return "", fmt.Errorf("passphrase file %s is a symlink, not followed: %w", path, sessionstore.ErrInsecurePermissions)
		}
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if err := fsutil.CheckPrivateFile(path, fi); err != nil {
		return "", fmt.Errorf("passphrase file %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", err
	}
	defer clear(data)
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("%s: empty passphrase", path)
	}
	return line, nil
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
