package etcdstore

import "github.com/sessionstore/sessionstore/internal/names"

// stemOf and nameOf map auth types to key stems and back: the same stems
// as filestore's file names (see package names). A stem never contains
// "/", so no name's lock prefix (<prefix>/locks/<stem>/) contains
// another's.
var (
	stemOf = names.Stem
	nameOf = names.Name
)
