package natsbroker_test

// Losses when a node falls behind (Options.Pending small): Behind counts
// each message NATS dropped, and the gap the drops leave is counted in
// Missing and reported with the next message, also when another filter
// matching the topic comes in the middle of the gap.

import (
	"fmt"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/topics/natsbroker"
)

// rcBehind makes node A (Pending 4) with filters, whose deliveries stop on
// the first message until released, and node B; it sends m0, waits until
// A is stuck on it, bursts m1..m40 (m1..m4 wait in the queue, NATS drops
// m5..m40) and flushes, so that every message reached A or was dropped.
func rcBehind(t *testing.T, filters ...string) (a, b *rcNode, release func()) {
	t.Helper()
	ns := startNATS(t, -1)
	t.Cleanup(func() { stopNATS(ns) })
	a = rcStart(t, ns.ClientURL(), &natsbroker.Options{Pending: 4})
	b = rcStart(t, ns.ClientURL(), nil)
	block := make(chan struct{})
	a.mu.Lock()
	a.block, a.entered = block, make(chan string, 64)
	a.mu.Unlock()
	for _, f := range filters {
		a.subscribe(t, f)
	}
	if err := rcPublish(b.link, "room/lobby", "m0"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.entered:
	case <-time.After(rcGuard):
		t.Fatal("m0 never reached A")
	}
	for i := 1; i <= 40; i++ {
		if err := rcPublish(b.link, "room/lobby", fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, nc := range []*rcNode{b, a} {
		if err := nc.nc.FlushTimeout(rcGuard); err != nil {
			t.Fatal(err)
		}
	}
	var released bool
	release = func() {
		if !released {
			released = true
			close(block)
		}
	}
	t.Cleanup(release)
	return a, b, release
}

// rcBehindCheck releases A, waits for NATS's count of the drops, sends
// m41 and checks what A saw.
func rcBehindCheck(t *testing.T, a, b *rcNode, release func()) {
	t.Helper()
	release()
	deadline := time.Now().Add(rcGuard)
	for a.broker.Losses().Behind < 36 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // a poll: NATS's drops are read once a second
	}
	rcSync(t, b, a, "room/lobby", "m41")
	got := a.take()
	var payloads []string
	for _, d := range got {
		payloads = append(payloads, d.payload)
	}
	want := []string{"m0", "m1", "m2", "m3", "m4", "m41"}
	if fmt.Sprint(payloads) != fmt.Sprint(want) {
		t.Fatalf("delivered %q, want %q", payloads, want)
	}
	if last := got[len(got)-1]; last.lost != 36 {
		t.Errorf("m41 delivered with Lost %d, want 36 (m5..m40)", last.lost)
	}
	if l := a.broker.Losses(); l.Behind != 36 || l.Missing != 36 {
		t.Errorf("losses %+v, want Behind 36 and Missing 36", l)
	}
}

// TestBehindGapCountedWhenAFilterComesDuringIt: room/lobby falls behind,
// then room/+ comes while it is: room/lobby kept its subscription
// throughout, so the 36 messages NATS dropped are counted in Behind and,
// once m41 arrives through it, in Missing, and m41 reports them as lost.
func TestBehindGapCountedWhenAFilterComesDuringIt(t *testing.T) {
	a, b, release := rcBehind(t, "room/lobby")
	a.subscribe(t, "room/+")
	rcBehindCheck(t, a, b, release)
}
