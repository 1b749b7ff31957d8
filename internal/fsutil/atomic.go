package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Step names one system call of WriteFile, for fault injection in tests.
type Step string

const (
	StepCreate  Step = "create"   // creating the temp file
	StepWrite   Step = "write"    // writing the data
	StepSync    Step = "sync"     // fsync of the temp file
	StepClose   Step = "close"    // closing the temp file
	StepRename  Step = "rename"   // renaming over the target
	StepSyncDir Step = "sync dir" // fsync of the directory
)

func (s Step) String() string { return string(s) }

// FaultFunc, when set, is called before each step of WriteFile; a non-nil
// result makes that step fail with it. It is a test seam: nil in production.
type FaultFunc func(Step) error

// WriteFile durably replaces dir/name with data: it creates dir/tmpName with
// O_EXCL and mode 0600 (whatever the umask), writes and fsyncs it, renames it
// over dir/name and fsyncs dir. On any failure the temp file is removed and
// dir/name is left as it was.
//
// The caller chooses tmpName. If the caller holds a lock that no other writer
// of name can hold at the same time, a fixed tmpName is safe, and a file left
// at tmpName can only be a crashed writer's: WriteFile removes it and retries
// once (so cleanup costs O(1), never a directory scan).
func WriteFile(dir, name, tmpName string, data []byte, fault FaultFunc) (err error) {
	return writeFile(dir, name, tmpName, data, fault, func() error { return SyncDir(dir) })
}

// SyncDir fsyncs a directory, so that a rename in it is durable (a no-op
// on Windows, where directories cannot be fsynced).
func SyncDir(dir string) error {
	d, err := OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteFileIn is WriteFile in the directory d has open, fsynced through d.
func WriteFileIn(d *Dir, name, tmpName string, data []byte, fault FaultFunc) (err error) {
	return writeFile(d.path, name, tmpName, data, fault, d.Sync)
}

func writeFile(dir, name, tmpName string, data []byte, fault FaultFunc, syncDir func() error) error {
	tmpPath := filepath.Join(dir, tmpName)
	step := func(s Step, do func() error) error {
		if fault != nil {
			if err := fault(s); err != nil {
				return fmt.Errorf("%s %s: %w", s, tmpPath, err)
			}
		}
		return do()
	}
	var f tempFile
	create := func() (err error) {
		f, err = createPrivate(tmpPath)
		return err
	}
	err := step(StepCreate, create)
	if errors.Is(err, fs.ErrExist) {
		// Left behind by a writer that crashed while holding the lock.
		if rmErr := os.Remove(tmpPath); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			return rmErr
		}
		err = step(StepCreate, create)
	}
	if err != nil {
		return err
	}
	closed, renamed := false, false
	defer func() {
		if !closed {
			f.Close()
		}
		if !renamed {
			os.Remove(tmpPath)
		}
	}()
	if err := step(StepWrite, func() error { _, err := f.Write(data); return err }); err != nil {
		return err
	}
	if err := step(StepSync, f.Sync); err != nil {
		return err
	}
	if err := step(StepClose, func() error { closed = true; return f.Close() }); err != nil {
		return err
	}
	if err := step(StepRename, func() error { return rename(tmpPath, filepath.Join(dir, name)) }); err != nil {
		return err
	}
	renamed = true
	return step(StepSyncDir, syncDir)
}

// A tempFile is the file WriteFile writes: raw file descriptors where the
// platform allows (no poller registration for a file that lives for a
// millisecond), an *os.File elsewhere.
type tempFile interface {
	Write([]byte) (int, error)
	Sync() error
	Close() error
}
