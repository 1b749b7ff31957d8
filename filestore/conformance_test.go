package filestore_test

import (
	"testing"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/filestore"
	"github.com/sessionstore/sessionstore/sessionstoretest"
)

func TestConformance(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []filestore.Option
	}{
		{"watcher", nil},
		{"without watcher", []filestore.Option{filestore.WithoutWatcher()}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			sessionstoretest.TestStore(t, func(t *testing.T) (func() (sessionstore.Store, error), func()) {
				dir, key := t.TempDir(), newKeyFile(t, false)
				return func() (sessionstore.Store, error) {
					return filestore.Open(dir, append([]filestore.Option{filestore.WithKeyFile(key)}, mode.opts...)...)
				}, nil
			})
		})
	}
}
