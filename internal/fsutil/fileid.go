package fsutil

import (
	"sync/atomic"
	"time"
)

// A FileID identifies one version of a file by its metadata: device,
// inode, size, modification and change times. Two reads of a path with
// equal FileIDs saw the same bytes, provided that the first was taken at
// least RacyWindow after the file's change time: a newer file can reuse
// the inode and have the same size, and timestamps are as coarse as a
// kernel tick, but its change time is then later.
type FileID struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64 // nanoseconds since the epoch
}

// RacyWindow is how long after a file's change time its FileID becomes a
// trustworthy stand-in for its contents (git's "racily clean" rule, with
// a wide margin over timestamp granularity). Tests shorten it with
// SetRacyWindow; it is read atomically, as background goroutines read it.
func RacyWindow() time.Duration { return time.Duration(racyWindow.Load()) }

var racyWindow atomic.Int64

func init() { racyWindow.Store(int64(time.Second)) }

// SetRacyWindow sets the racy window (tests) and returns a function that
// restores the old one.
func SetRacyWindow(d time.Duration) (restore func()) {
	old := racyWindow.Swap(int64(d))
	return func() { racyWindow.Store(old) }
}

// SafeAt reports whether id, taken at time at, can stand for the file's
// contents from now on.
func (id FileID) SafeAt(at time.Time) bool {
	return id.Ino != 0 && at.UnixNano()-id.Ctime > racyWindow.Load()
}
