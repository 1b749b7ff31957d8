package pacer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/sessionstore/sessionstore/internal/pacer"
)

// TestWaitKeepsThePeriod: n Waits take at least n periods (a Wait never
// comes early), and a late Wait does not make the next ones early to
// catch up. No upper bound: how late a sleep wakes is the machine's.
func TestWaitKeepsThePeriod(t *testing.T) {
	const period, n = 200 * time.Microsecond, 50
	start := time.Now() // before Start: the periods count from it
	p := pacer.Start(period)
	defer p.Stop()
	for range n {
		p.Wait()
	}
	assert.GreaterOrEqual(t, time.Since(start), n*period, "%d Waits", n)

	time.Sleep(10 * period) // late: the next period has long begun
	p.Wait()
	t0 := time.Now()
	for range 5 {
		p.Wait()
	}
	// The first of these ends one period after the late one's deadline,
	// which t0 may already be past: at least 4 whole periods.
	assert.GreaterOrEqual(t, time.Since(t0), 4*period, "Waits after a late one")
}

// The real period of a loop paced every 100 µs, as ns/op: by a Pacer, and
// by a time.Ticker (about 1 ms in a process with nothing else to run,
// where the runtime waits for its timers in whole milliseconds).
//
//	go test ./internal/pacer -run '^$' -bench .
func BenchmarkPacer100us(b *testing.B) {
	p := pacer.Start(100 * time.Microsecond)
	defer p.Stop()
	for b.Loop() {
		p.Wait()
	}
}

func BenchmarkTicker100us(b *testing.B) {
	t := time.NewTicker(100 * time.Microsecond)
	defer t.Stop()
	for b.Loop() {
		<-t.C
	}
}
