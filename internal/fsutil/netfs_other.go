//go:build !linux && !darwin

package fsutil

// NetworkFS reports false: detection is implemented for Linux and macOS.
func NetworkFS(path string) (string, bool) { return "", false }
