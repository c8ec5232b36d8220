package wstest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

var _ wsconn.Clock = (*wstest.Clock)(nil)

func TestClockFiresDueTimersInOrder(t *testing.T) {
	clk := wstest.NewClock()
	start := clk.Now()
	var fired []string
	at := func(name string, d time.Duration) {
		clk.AfterFunc(d, func() {
			fired = append(fired, fmt.Sprintf("%s@%v", name, clk.Now().Sub(start)))
		})
	}
	at("c", 3*time.Second)
	at("a", time.Second)
	at("b", 2*time.Second)
	at("a2", time.Second)
	at("late", 10*time.Second)

	clk.Advance(500 * time.Millisecond)
	if len(fired) != 0 || clk.Now().Sub(start) != 500*time.Millisecond {
		t.Fatalf("after 0.5s: fired %v, now +%v", fired, clk.Now().Sub(start))
	}
	clk.Advance(4500 * time.Millisecond)
	want := []string{"a@1s", "a2@1s", "b@2s", "c@3s"}
	if !slices.Equal(fired, want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	if got := clk.Now().Sub(start); got != 5*time.Second {
		t.Fatalf("now +%v, want +5s", got)
	}
	if clk.Timers() != 1 {
		t.Fatalf("%d timers armed, want the late one", clk.Timers())
	}
}

func TestClockTimerArmedByATimerFiresWithinTheSameAdvance(t *testing.T) {
	clk := wstest.NewClock()
	start := clk.Now()
	var ticks []time.Duration
	var tick func()
	var timer wsconn.Timer
	tick = func() {
		ticks = append(ticks, clk.Now().Sub(start))
		timer.Reset(2 * time.Second) // as wsconn's keep-alive does
	}
	timer = clk.AfterFunc(2*time.Second, tick)
	clk.Advance(7 * time.Second)
	if want := []time.Duration{2 * time.Second, 4 * time.Second, 6 * time.Second}; !slices.Equal(ticks, want) {
		t.Fatalf("ticks at %v, want %v", ticks, want)
	}
}

func TestClockStopAndReset(t *testing.T) {
	clk := wstest.NewClock()
	n := 0
	timer := clk.AfterFunc(time.Second, func() { n++ })
	if !timer.Stop() {
		t.Fatal("Stop of an armed timer reported false")
	}
	if timer.Stop() {
		t.Fatal("second Stop reported true")
	}
	clk.Advance(time.Hour)
	if n != 0 {
		t.Fatal("a stopped timer fired")
	}
	if timer.Reset(time.Second) {
		t.Fatal("Reset of a stopped timer reported it active")
	}
	clk.Advance(999 * time.Millisecond)
	if n != 0 {
		t.Fatal("fired early: Reset counts from the clock's current time")
	}
	clk.Advance(time.Millisecond)
	if n != 1 {
		t.Fatalf("fired %d times after Reset, want 1", n)
	}
	if timer.Stop() {
		t.Fatal("Stop of a timer that fired reported true")
	}
	timer.Reset(time.Second)
	if !timer.Reset(time.Second) {
		t.Fatal("Reset of an armed timer reported false")
	}
}

func TestClockWaitTimers(t *testing.T) {
	clk := wstest.NewClock()
	go func() {
		time.Sleep(10 * time.Millisecond)
		clk.AfterFunc(time.Second, func() {})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := clk.WaitTimers(ctx, 1); err != nil {
		t.Fatalf("WaitTimers: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := clk.WaitTimers(short, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitTimers for a timer nobody arms: %v", err)
	}
}
