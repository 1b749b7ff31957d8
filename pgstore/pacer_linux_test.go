package pgstore_test

import (
	"runtime"
	"syscall"
	"time"
)

// As etcdstore's and filestore's: the visibility row's reader polls every
// 100 µs, which Go's timers cannot keep.

// A pacer paces one goroutine's polling loop at a period under a
// millisecond, which Go's timers cannot keep: a runtime with nothing else
// to run waits for its next timer in epoll_wait, whose timeout is in
// whole milliseconds, so a 100 µs time.Ticker ticks about every
// millisecond. A pacer sleeps in nanosleep(2) instead, on its goroutine's
// thread, locked to it for good (the thread ends with the goroutine), with
// 1 ns of timer slack instead of the default 50 µs.
type pacer struct {
	period time.Duration
	next   time.Time
}

// startPacer returns a pacer for the calling goroutine, which must end
// once it is done with it.
func startPacer(period time.Duration) *pacer {
	runtime.LockOSThread()
	syscall.RawSyscall(syscall.SYS_PRCTL, 29, 1, 0) // PR_SET_TIMERSLACK, linux/prctl.h
	return &pacer{period: period, next: time.Now().Add(period)}
}

// wait sleeps until the next period begins (at once if it has begun). A
// late wait does not make the next ones early to catch up.
func (p *pacer) wait() {
	now := time.Now()
	if d := p.next.Sub(now); d > 0 {
		ts := syscall.NsecToTimespec(d.Nanoseconds())
		for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
		}
		now = now.Add(d)
	}
	p.next = now.Add(p.period)
}
