//go:build !linux && !darwin

package fsutil

// ReadRegular is ReadRegularChecked without a check: this platform gives
// no FileID.
func ReadRegular(path string, limit int64) ([]byte, FileID, error) {
	return ReadRegularChecked(path, limit, nil)
}
