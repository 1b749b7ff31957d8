//go:build !linux

package pacer

import "time"

func lockThread() (unlock func()) { return func() {} }

func sleep(d time.Duration) { time.Sleep(d) }
