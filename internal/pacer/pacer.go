// Package pacer paces a polling loop at a period shorter than a
// millisecond, for the readers of sessionstore's performance reports.
//
// Go's timers cannot: a runtime with nothing else to run waits for its
// next timer in epoll_wait, whose timeout is in whole milliseconds
// (runtime/netpoll_epoll.go rounds any wait under 1 ms up to 1 ms), so a
// 100 µs time.Ticker in an idle process ticks about every millisecond. A
// Pacer sleeps in the kernel instead: nanosleep(2) on Linux, on its
// goroutine's thread (locked to it, with 1 ns of timer slack instead of
// the default 50 µs). Elsewhere it falls back to time.Sleep, with Go's
// granularity. To compare the two on a machine:
//
//	go test ./internal/pacer -run '^$' -bench .
package pacer

import "time"

// A Pacer paces one goroutine's loop. It is not safe for concurrent use:
// Start and Stop must be called on the goroutine that calls Wait.
type Pacer struct {
	period time.Duration
	next   time.Time
	stop   func()
}

// Start returns a Pacer with the given period for the calling goroutine,
// which it locks to its thread until Stop.
func Start(period time.Duration) *Pacer {
	return &Pacer{period: period, next: time.Now().Add(period), stop: lockThread()}
}

// Wait sleeps until the next period begins (at once if it has begun).
// A late Wait does not make the next ones early to catch up.
func (p *Pacer) Wait() {
	now := time.Now()
	if d := p.next.Sub(now); d > 0 {
		sleep(d)
		now = now.Add(d)
	}
	p.next = now.Add(p.period)
}

// Stop releases the thread Start locked, with its timer slack restored.
func (p *Pacer) Stop() {
	p.stop()
}
