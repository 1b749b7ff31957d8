package pacer

import (
	"runtime"
	"syscall"
	"time"
)

const prSetTimerslack = 29 // PR_SET_TIMERSLACK, linux/prctl.h

// lockThread locks the goroutine to its thread and sets the thread's
// timer slack (50 µs by default, added to every sleep) to 1 ns.
func lockThread() (unlock func()) {
	runtime.LockOSThread()
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 1, 0)
	return func() {
		syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 0, 0) // 0: the default
		runtime.UnlockOSThread()
	}
}

// sleep sleeps d in nanosleep(2), on the locked thread.
func sleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
