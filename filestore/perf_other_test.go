//go:build !linux

package filestore_test

import "testing"

// The report's tmpfs, visibility and system call rows are Linux-only.

func tmpfsDir(t testing.TB) (string, bool) { return "", false }

func visibilityRows(t *testing.T, rounds, n int) []perfRow { return nil }

func syscallRow(t *testing.T) perfRow {
	return perfRow{op: "Set: system calls", ours: "Linux only", ratio: "—", target: "≤ 20"}
}

func fsType(dir string) string { return "" }
