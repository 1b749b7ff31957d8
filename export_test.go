package sessionstore

import "time"

// SetTimeNow replaces the clock of every token source until the returned
// function restores it (tests only).
func SetTimeNow(now func() time.Time) (restore func()) {
	old := timeNow
	timeNow = now
	return func() { timeNow = old }
}
