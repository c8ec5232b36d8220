package natsbroker_test

// A NATS server restart (nats.go reconnects and re-creates the node's
// subscriptions) while filters overlap, then the widest filter removed,
// after the reconnection or during the outage: the server ends up with
// the subscriptions of the filters left, and every topic still subscribed
// gets its messages once.

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/topics/natsbroker"
)

func TestRestartThenRemoveAnOverlappingFilter(t *testing.T) {
	for _, during := range []bool{false, true} {
		t.Run(fmt.Sprintf("removed_during_outage=%v", during), func(t *testing.T) {
			rcRestart(t, during)
		})
	}
}

func rcRestart(t *testing.T, removeDuringOutage bool) {
	ns := startNATS(t, -1)
	addr := ns.Addr().String()
	url := ns.ClientURL()
	reconnected := make(chan struct{}, 8)
	onReconnect := nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} })
	a := rcStart(t, url, nil, onReconnect)
	b := rcStart(t, url, nil, onReconnect)
	filters := []string{"room/#", "room/lobby", "room/+/x", "room", "hall"}
	for _, f := range filters {
		a.subscribe(t, f)
	}
	a.subscribe(t, rcMarkerTopic)
	want := rcHeld(natsbroker.DefaultPrefix, append(slices.Clone(filters), rcMarkerTopic))
	if got := rcServerSubs(t, ns, a.nc); !slices.Equal(got, want) {
		t.Fatalf("before the restart the server holds %q, want %q", got, want)
	}

	stopNATS(ns)
	waitFor(t, "both nodes see the outage", rcGuard, func() bool { return !a.nc.IsConnected() && !b.nc.IsConnected() })
	if removeDuringOutage {
		a.unsubscribe(t, "room/#")
	}
	ns = rcStartAt(t, addr)
	defer stopNATS(ns)
	for range 2 {
		select {
		case <-reconnected:
		case <-time.After(rcGuard):
			t.Fatal("a node did not reconnect")
		}
	}
	if !removeDuringOutage {
		if got := rcServerSubs(t, ns, a.nc); !slices.Equal(got, want) {
			t.Fatalf("after the restart the server holds %q, want %q", got, want)
		}
		a.unsubscribe(t, "room/#")
	}
	rest := []string{"room/lobby", "room/+/x", "room", "hall", rcMarkerTopic}
	want = rcHeld(natsbroker.DefaultPrefix, rest)
	if got := rcServerSubs(t, ns, a.nc); !slices.Equal(got, want) {
		t.Fatalf("without room/# the server holds %q, want %q", got, want)
	}
	if err := b.nc.FlushTimeout(rcGuard); err != nil {
		t.Fatal(err)
	}
	a.take()
	topicPool := []string{"room/lobby", "room/a/x", "room", "hall", "room/other", "room/a/b/c", "room/a"}
	for _, tp := range topicPool {
		if err := rcPublish(b.link, tp, tp); err != nil {
			t.Fatal(err)
		}
	}
	rcSync(t, b, a, rcMarkerTopic, "marker")
	count := map[string]int{}
	for _, d := range a.take() {
		count[d.topic]++
	}
	for _, tp := range topicPool {
		w := 0
		for _, f := range rest {
			if rcWireMatch(f, tp) {
				w = 1
			}
		}
		if count[tp] != w {
			t.Errorf("%s delivered %d times, want %d", tp, count[tp], w)
		}
	}
	if l := a.broker.Losses(); l != (natsbroker.Losses{}) {
		t.Errorf("losses %+v", l)
	}
}

// rcStartAt starts a NATS server on 127.0.0.1 at addr's port again.
func rcStartAt(t *testing.T, addr string) *server.Server {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return startNATSWith(t, server.Options{Port: port})
}
