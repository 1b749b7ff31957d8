package pacer_test

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sessionstore/sessionstore/internal/pacer"
)

const prGetTimerslack = 30 // PR_GET_TIMERSLACK, linux/prctl.h

func timerSlack() uintptr {
	s, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerslack, 0, 0)
	return s
}

// TestTimerSlackIsTheThreadsAndRestored: the Pacer's thread sleeps with
// 1 ns of timer slack, and Stop gives the thread back as it was.
func TestTimerSlackIsTheThreadsAndRestored(t *testing.T) {
	runtime.LockOSThread() // keep this goroutine's thread across Stop
	defer runtime.UnlockOSThread()
	before := timerSlack()
	require.NotEqual(t, uintptr(1), before, "a thread's default slack")

	p := pacer.Start(100 * time.Microsecond)
	p.Wait()
	assert.Equal(t, uintptr(1), timerSlack(), "slack while pacing")
	p.Stop()
	assert.Equal(t, before, timerSlack(), "slack after Stop")
}
