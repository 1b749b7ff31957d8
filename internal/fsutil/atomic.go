package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Step names one system call of WriteFile, for fault injection in tests.
type Step int

const (
	StepCreate  Step = iota // creating the temp file
	StepWrite               // writing the data
	StepSync                // fsync of the temp file
	StepClose               // closing the temp file
	StepRename              // renaming over the target
	StepSyncDir             // fsync of the directory
)

func (s Step) String() string {
	switch s {
	case StepCreate:
		return "create"
	case StepWrite:
		return "write"
	case StepSync:
		return "sync"
	case StepClose:
		return "close"
	case StepRename:
		return "rename"
	case StepSyncDir:
		return "sync dir"
	}
	return fmt.Sprintf("step(%d)", int(s))
}

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

// WriteFileIn is WriteFile in the directory d has open, fsynced through d.
func WriteFileIn(d *Dir, name, tmpName string, data []byte, fault FaultFunc) (err error) {
	return writeFile(d.path, name, tmpName, data, fault, d.Sync)
}

func writeFile(dir, name, tmpName string, data []byte, fault FaultFunc, syncDir func() error) (err error) {
	step := func(s Step) error {
		if fault == nil {
			return nil
		}
		return fault(s)
	}
	tmpPath := filepath.Join(dir, tmpName)
	f, err := createExcl(tmpPath, step)
	if errors.Is(err, fs.ErrExist) {
		// Left behind by a writer that crashed while holding the lock.
		if rmErr := os.Remove(tmpPath); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			return rmErr
		}
		f, err = createExcl(tmpPath, step)
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
	if err := step(StepWrite); err != nil {
		return &fs.PathError{Op: "write", Path: tmpPath, Err: err}
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := step(StepSync); err != nil {
		return &fs.PathError{Op: "sync", Path: tmpPath, Err: err}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := step(StepClose); err != nil {
		return &fs.PathError{Op: "close", Path: tmpPath, Err: err}
	}
	closed = true
	if err := f.Close(); err != nil {
		return err
	}
	target := filepath.Join(dir, name)
	if err := step(StepRename); err != nil {
		return &os.LinkError{Op: "rename", Old: tmpPath, New: target, Err: err}
	}
	if err := rename(tmpPath, target); err != nil {
		return err
	}
	renamed = true
	if err := step(StepSyncDir); err != nil {
		return &fs.PathError{Op: "sync", Path: dir, Err: err}
	}
	return syncDir()
}

func createExcl(path string, step func(Step) error) (tempFile, error) {
	if err := step(StepCreate); err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return createPrivate(path)
}

// A tempFile is the file WriteFile writes: raw file descriptors where the
// platform allows (no poller registration for a file that lives for a
// millisecond), an *os.File elsewhere.
type tempFile interface {
	Write([]byte) (int, error)
	Sync() error
	Close() error
}
