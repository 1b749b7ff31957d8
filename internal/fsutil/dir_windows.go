//go:build windows

package fsutil

import "io/fs"

// A Dir stands for a directory kept open for fsync; Windows cannot fsync a
// directory (SyncDir is a no-op there), so it holds nothing open.
type Dir struct{ path string }

// OpenDir returns a Dir for path.
func OpenDir(path string) (*Dir, error) { return &Dir{path: path}, nil }

// Is reports true: there is nothing open to go stale.
func (d *Dir) Is(fs.FileInfo) bool { return true }

// Sync does nothing, as SyncDir.
func (d *Dir) Sync() error { return nil }

// Close does nothing.
func (d *Dir) Close() error { return nil }
