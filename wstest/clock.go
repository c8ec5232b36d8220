package wstest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/colibri-ws/colibri/wsconn"
)

// Clock is a fake wsconn.Clock for tests: its time stands still until
// Advance moves it, and Advance runs the timers that fall due, so keep-alive
// pings, pong timeouts and idle timeouts happen at once and in a known
// order. Give it to the connections under test with
//
//	clk := wstest.NewClock()
//	cfg := &wsconn.Config{Clock: clk, PingInterval: 30 * time.Second}
//
// A Clock is safe for concurrent use. Only timers and Now are fake: socket
// deadlines, and so WriteTimeout and CloseTimeout, still run on real time.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64 // orders timers that fall due at the same instant
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced when a timer is armed
}

// NewClock returns a Clock that reads 2026-01-01 00:00:00 UTC until it is
// advanced.
func NewClock() *Clock {
	return &Clock{
		now:     time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC),
		changed: make(chan struct{}),
	}
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms a timer that calls f once the clock has been advanced by d
// or more. f runs on the goroutine that calls Advance, not on a goroutine
// of its own.
func (c *Clock) AfterFunc(d time.Duration, f func()) wsconn.Timer {
	t := &fakeTimer{c: c, f: f}
	c.mu.Lock()
	c.arm(t, d)
	c.mu.Unlock()
	return t
}

// arm schedules t to fire d from now; the caller holds mu.
func (c *Clock) arm(t *fakeTimer, d time.Duration) {
	c.seq++
	t.when, t.seq, t.armed = c.now.Add(max(d, 0)), c.seq, true
	c.timers = append(c.timers, t)
	close(c.changed)
	c.changed = make(chan struct{})
}

// disarm removes t; the caller holds mu. It reports whether t was armed.
func (c *Clock) disarm(t *fakeTimer) bool {
	if !t.armed {
		return false
	}
	t.armed = false
	c.timers = slices.DeleteFunc(c.timers, func(x *fakeTimer) bool { return x == t })
	return true
}

// Advance moves the clock forward by d. Every timer due by the new time
// fires in order of its due time, each on the calling goroutine and with
// Now reading its due time; a timer armed by one of them fires too if it
// falls due within d. Advance returns once all of them have returned.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		t := c.next(end)
		if t == nil {
			break
		}
		c.disarm(t)
		if t.when.After(c.now) {
			c.now = t.when
		}
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	if end.After(c.now) {
		c.now = end
	}
	c.mu.Unlock()
}

// next returns the earliest timer due by end, or nil; the caller holds mu.
func (c *Clock) next(end time.Time) *fakeTimer {
	var first *fakeTimer
	for _, t := range c.timers {
		if t.when.After(end) {
			continue
		}
		if first == nil || t.when.Before(first.when) || (t.when.Equal(first.when) && t.seq < first.seq) {
			first = t
		}
	}
	return first
}

// Timers returns the number of armed timers. Each open connection with
// keep-alive or an idle timeout has one.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitTimers blocks until at least n timers are armed, or ctx ends. A test
// calls it before Advance when it cannot otherwise know that the
// connection under test has started its keep-alive timer.
func (c *Clock) WaitTimers(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		armed, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if armed >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// fakeTimer is a timer of a Clock.
type fakeTimer struct {
	c     *Clock
	f     func()
	when  time.Time
	seq   uint64
	armed bool // under c.mu
}

// Stop disarms the timer and reports whether it was armed.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.c.disarm(t)
}

// Reset re-arms the timer to fire d after the clock's current time and
// reports whether it had been armed.
func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.c.disarm(t)
	t.c.arm(t, d)
	return was
}
