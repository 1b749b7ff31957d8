//go:build !linux

package pgstore_test

import "time"

// A pacer paces a polling loop; elsewhere than on Linux it sleeps with
// time.Sleep, at Go's timers' granularity (see pacer_linux_test.go).
type pacer struct {
	period time.Duration
	next   time.Time
}

func startPacer(period time.Duration) *pacer {
	return &pacer{period: period, next: time.Now().Add(period)}
}

func (p *pacer) wait() {
	now := time.Now()
	if d := p.next.Sub(now); d > 0 {
		time.Sleep(d)
		now = now.Add(d)
	}
	p.next = now.Add(p.period)
}
