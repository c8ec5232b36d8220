package natsbroker_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/topics/natsbroker"
)

// natsbroker.Connect with no NATS server to reach: it fails at once with
// nats.ErrNoServers (the "reconnect forever" it sets applies only once
// connected), so the node does not start as if it had a broker.
func TestConnectUnreachableFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	nc, err := natsbroker.Connect("nats://" + addr)
	if err == nil {
		nc.Close()
		t.Fatal("Connect to nothing succeeded")
	}
	if !errors.Is(err, nats.ErrNoServers) {
		t.Errorf("Connect: %v, want nats.ErrNoServers", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Connect took %v to fail", d)
	}
}

// Connect's options may be overridden (nats.RetryOnFailedConnect): a node
// that starts while NATS is unreachable serves its clients at once
// (Options.SubscribeTimeout: "While disconnected it does not wait"), its
// publishes reach its own members and wait in the reconnect buffer, and
// once it connects its subscriptions take effect and the buffer goes out;
// nothing is counted lost.
func TestStartWhileNATSUnreachable(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	g := &gate{shut: true}
	a := rvNatsfailStart(t, ns.ClientURL(), rvNatsfailOpts{nats: []nats.Option{nats.SetCustomDialer(g), nats.RetryOnFailedConnect(true)}})
	if a.nc.IsConnected() {
		t.Fatal("connected through a shut gate")
	}
	b := rvNatsfailStart(t, ns.ClientURL(), rvNatsfailOpts{})
	bws, _ := b.join(t, nil, "r/#")
	br := rvNatsfailRead(bws)

	start := time.Now()
	aws, _ := a.join(t, nil, "r/#")
	if d := time.Since(start); d > time.Second {
		t.Errorf("joining while NATS is unreachable took %v", d)
	}
	ar := rvNatsfailRead(aws)
	publish(t, a.hub, "r/a", "a/1", "a/2")
	waitFor(t, "local delivery while unreachable", guard, func() bool { return ar.has("a/2") })

	g.open()
	waitFor(t, "node a connects", guard, func() bool { return a.nc.IsConnected() })
	flush(t, a.nc)
	publish(t, b.hub, "r/b", "b/1")
	publish(t, a.hub, "r/a", "a/3")
	waitFor(t, "b's publish reaches a's client", guard, func() bool { return ar.has("b/1") })
	waitFor(t, "a's publishes reach b's client", guard, func() bool { return br.has("a/3") })
	rvNatsfailSeqs(t, "b's client", br.all())
	if got := br.all(); len(got) != 4 || got[0] != "a/1" || got[1] != "a/2" {
		t.Errorf("b's client got %q, want a/1 a/2 (buffered), b/1, a/3", got)
	}
	for name, n := range map[string]*rvNatsfailNode{"a": a, "b": b} {
		if l := n.broker.Losses(); l.Total() != 0 {
			t.Errorf("node %s counted losses %+v", name, l)
		}
	}
}
