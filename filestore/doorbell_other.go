//go:build !linux

package filestore

// A doorbell hastens fsnotify's record events on Linux (doorbell_linux.go);
// elsewhere fsnotify alone serves.
type doorbell struct{}

func newDoorbell(ring func(name string)) *doorbell { return nil }

func (d *doorbell) add(dir string)    {}
func (d *doorbell) remove(dir string) {}
func (d *doorbell) close()            {}
