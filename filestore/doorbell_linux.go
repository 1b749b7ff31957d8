//go:build linux

package filestore

import (
	"encoding/binary"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
)

// A doorbell is a second inotify instance beside fsnotify's, on the same
// directories, for one kind of event: a record renamed into place or
// removed. fsnotify reads its events through the runtime's network
// poller, which a process whose every P stays busy (a goroutine spinning
// on Get with runtime.Gosched, say) consults only about every 10 ms; the
// doorbell waits in a blocking epoll_wait(2) on a thread of its own, and a
// goroutine back from a blocking system call is queued at once. It only
// hastens: it invalidates the record the event names, as fsnotify's event
// does when it arrives (which then finds the file's digest cached, and
// does nothing more). Where it cannot be set up, fsnotify alone serves.
type doorbell struct {
	fd   int               // the inotify instance (non-blocking)
	stop int               // the write end of the pipe that ends run
	ring func(name string) // called with each record's path

	mu   sync.Mutex // guards wds and dirs
	wds  map[int32]string
	dirs map[string]int32
}

const bellMask = syscall.IN_MOVED_TO | syscall.IN_DELETE | syscall.IN_ONLYDIR

// newDoorbell starts a doorbell that calls ring, or returns nil.
func newDoorbell(ring func(name string)) *doorbell {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(fd)
		return nil
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err == nil {
		err = syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
	}
	if err == nil {
		err = syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, p[0], &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(p[0])})
	}
	if err != nil {
		for _, c := range []int{fd, p[0], p[1], ep} {
			if c >= 0 {
				syscall.Close(c)
			}
		}
		return nil
	}
	d := &doorbell{fd: fd, stop: p[1], ring: ring, wds: make(map[int32]string), dirs: make(map[string]int32)}
	go d.run(ep, p[0])
	return d
}

// add watches dir, best effort.
func (d *doorbell) add(dir string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.dirs[dir]; ok { // a replaced directory: follow the new one
		syscall.InotifyRmWatch(d.fd, uint32(old))
		delete(d.wds, old)
	}
	wd, err := syscall.InotifyAddWatch(d.fd, dir, bellMask)
	if err != nil {
		delete(d.dirs, dir)
		return
	}
	d.wds[int32(wd)], d.dirs[dir] = dir, int32(wd)
}

// remove stops watching dir.
func (d *doorbell) remove(dir string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if wd, ok := d.dirs[dir]; ok {
		syscall.InotifyRmWatch(d.fd, uint32(wd))
		delete(d.wds, wd)
		delete(d.dirs, dir)
	}
}

// close ends the doorbell's goroutine, which closes its descriptors.
func (d *doorbell) close() {
	if d != nil {
		syscall.Write(d.stop, []byte{0})
	}
}

func (d *doorbell) run(ep, stop int) {
	defer func() {
		syscall.Close(ep)
		syscall.Close(d.fd)
		syscall.Close(stop)
		syscall.Close(d.stop)
	}()
	events := make([]syscall.EpollEvent, 2)
	buf := make([]byte, 4096)
	for {
		n, err := syscall.EpollWait(ep, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == stop {
				return
			}
		}
		for {
			n, err := syscall.Read(d.fd, buf)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				break // drained (EAGAIN)
			}
			if d.dispatch(buf[:n]) {
				// A ring started a prefetch: it waits in this P's run
				// queue, which the wait below would leave stranded
				// (until the runtime's monitor takes the P back from
				// the system call, up to 10 ms later). Let it run first.
				runtime.Gosched()
			}
		}
	}
}

// dispatch rings for each record event in b, a buffer of inotify events,
// and reports whether it rang.
func (d *doorbell) dispatch(b []byte) (rang bool) {
	for off := 0; off+syscall.SizeofInotifyEvent <= len(b); {
		wd := int32(binary.NativeEndian.Uint32(b[off:]))
		mask := binary.NativeEndian.Uint32(b[off+4:])
		n := int(binary.NativeEndian.Uint32(b[off+12:]))
		start := off + syscall.SizeofInotifyEvent
		off = start + n
		if off > len(b) || mask&(syscall.IN_MOVED_TO|syscall.IN_DELETE) == 0 {
			continue
		}
		name := strings.TrimRight(string(b[start:off]), "\x00")
		if !strings.HasSuffix(name, recordSuffix) {
			continue
		}
		d.mu.Lock()
		dir, ok := d.wds[wd]
		d.mu.Unlock()
		if ok {
			d.ring(filepath.Join(dir, name))
			rang = true
		}
	}
	return rang
}
