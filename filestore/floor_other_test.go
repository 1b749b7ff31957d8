//go:build !linux && !darwin

package filestore_test

import (
	"errors"
	"os"
)

// The floors are measured on Linux (and macOS) only: elsewhere the
// benchmarks that need one skip.
var errNoFloor = errors.New("no floor on this platform")

func floorReadFile(path string, buf []byte) ([]byte, error) { return os.ReadFile(path) }

func floorStat(path string) error { _, err := os.Lstat(path); return err }

func floorLock(path string) (unlock func(), err error) { return nil, errNoFloor }

func floorDurableWrite(dir, name, tmpName string, data []byte) error { return errNoFloor }
