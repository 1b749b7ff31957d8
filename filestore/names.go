package filestore

import "github.com/sessionstore/sessionstore/internal/names"

const (
	recordSuffix = ".age"
	lockSuffix   = ".lock"
)

// stemOf and nameOf map auth types to file stems and back (see package
// names: the same stems as etcd keys).
var (
	stemOf = names.Stem
	nameOf = names.Name
)
