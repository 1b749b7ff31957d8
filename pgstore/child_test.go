package pgstore_test

import (
	"fmt"
	"os"
)

// runChild runs a child process's role.
func runChild(role string) int {
	fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
	return 2
}
