package natsbroker_test

// Overlapping filters over a slow link to NATS: node A reaches the server
// through a proxy that can hold back what the server sends (a congested
// or stalled path), or delay what A sends.

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/topics/natsbroker"
)

// TestStalledLinkThenRemovingAWildcardLosesNothing: room/lobby and room/#
// are subscribed. While the server's replies to A are held back, messages
// to room/lobby are on their way to A through both subscriptions; A then
// removes room/# (its last member leaves). When the held messages arrive,
// room/lobby's own subscription delivers them: nothing lost, nothing
// counted.
func TestStalledLinkThenRemovingAWildcardLosesNothing(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	p := rcStartProxy(t, ns.Addr().String())
	a := rcStart(t, p.url(), &natsbroker.Options{SubscribeTimeout: 200 * time.Millisecond})
	b := rcStart(t, ns.ClientURL(), nil)
	a.subscribe(t, "room/lobby")
	a.subscribe(t, "room/#")
	if got, want := rcServerSubs(t, ns, a.nc), []string{"colibri.topics.room", "colibri.topics.room.>", "colibri.topics.room.lobby"}; !slices.Equal(got, want) {
		t.Fatalf("server holds %q, want %q", got, want)
	}
	rcSync(t, b, a, "room/lobby", "m0")

	resume := p.stallServer()
	for i := 1; i <= 5; i++ {
		if err := rcPublish(b.link, "room/lobby", fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.nc.FlushTimeout(rcGuard); err != nil { // the server has routed m1..m5 to A
		t.Fatal(err)
	}
	start := time.Now()
	a.unsubscribe(t, "room/#")
	took := time.Since(start)
	resume()
	if err := a.nc.FlushTimeout(rcGuard); err != nil {
		t.Fatalf("A's connection after the stall: %v (status %v)", err, a.nc.Status())
	}
	rcSync(t, b, a, "room/lobby", "m6")

	var got []string
	for _, d := range a.take() {
		got = append(got, d.payload)
	}
	if want := []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6"}; !slices.Equal(got, want) {
		t.Errorf("room/lobby, subscribed throughout, got %q, want %q (Unsubscribe of room/# took %v, losses %+v)",
			got, want, took, a.broker.Losses())
	}
}

// TestSubscribeAfterReconnectIsConfirmed: A subscribes room/# while
// disconnected (it takes effect on reconnection, as documented). After the
// reconnection, over a path that delays what A sends by 300 ms, A
// subscribes room/lobby, and Subscribe waits for the server's
// confirmation: a message published elsewhere after Subscribe returned
// arrives (Options.SubscribeTimeout's promise).
func TestSubscribeAfterReconnectIsConfirmed(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	p := rcStartProxy(t, ns.Addr().String())
	reconnected := make(chan struct{}, 4)
	a := rcStart(t, p.url(), nil, nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	b := rcStart(t, ns.ClientURL(), nil)

	// Cut A off: the proxy closes its connection; A reconnects at once,
	// through the same proxy, now slow.
	p.setDelay(300*time.Millisecond, 0)
	p.cut()
	waitFor(t, "A notices the cut", rcGuard, func() bool { return !a.nc.IsConnected() })
	a.subscribe(t, "room/#") // while disconnected: does not wait
	select {
	case <-reconnected:
	case <-time.After(rcGuard):
		t.Fatal("A did not reconnect")
	}
	start := time.Now()
	a.subscribe(t, "room/lobby")
	took := time.Since(start)
	if err := rcPublish(b.link, "room/lobby", "after Subscribe returned"); err != nil {
		t.Fatal(err)
	}
	if err := b.nc.FlushTimeout(rcGuard); err != nil {
		t.Fatal(err)
	}
	// A's subscriptions are on the server now; a marker goes through.
	if err := a.nc.FlushTimeout(rcGuard); err != nil {
		t.Fatal(err)
	}
	rcSync(t, b, a, "room/lobby", "marker")
	var got []string
	for _, d := range a.take() {
		got = append(got, d.payload)
	}
	if want := []string{"after Subscribe returned", "marker"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q: Subscribe(room/lobby) returned after %v, before room/#'s subscription was confirmed", got, want, took)
	}
}

// TestLastLeaveOfAWildcardDoesNotWait: the docs (capacity.md) say a
// room's last member leaving does not wait for NATS, also when the filter
// it leaves matches another of the node's (here with 300 ms added each
// way).
func TestLastLeaveOfAWildcardDoesNotWait(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	p := rcStartProxy(t, ns.Addr().String())
	a := rcStart(t, p.url(), nil)
	a.subscribe(t, "room/lobby")
	a.subscribe(t, "hall")
	a.subscribe(t, "room/#")
	p.setDelay(150*time.Millisecond, 150*time.Millisecond)

	start := time.Now()
	a.unsubscribe(t, "hall") // matches nothing else
	plain := time.Since(start)
	start = time.Now()
	a.unsubscribe(t, "room/#") // matches room/lobby too
	wide := time.Since(start)
	if plain > 100*time.Millisecond {
		t.Fatalf("Unsubscribe(hall) took %v", plain)
	}
	if wide > 100*time.Millisecond {
		t.Errorf("Unsubscribe(room/#), the last member leaving a filter that matches another, took %v (hall: %v)", wide, plain)
	}
}
