package natsbroker_test

import (
	"testing"

	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
)

// newHub makes a quiet hub with opts, closed at cleanup.
func newHub(t *testing.T, opts topics.Options) *topics.Hub {
	t.Helper()
	opts.Logger = quiet
	h, err := topics.NewHub(&opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// blockHubs makes pubHub on pb to publish and hub on sb, whose members
// hold one message (up to 8 MiB) and whose drops it counts.
func blockHubs(t *testing.T, pb, sb *natsbroker.Broker) (pubHub, hub *topics.Hub, drops *cornerDrops) {
	t.Helper()
	drops = &cornerDrops{}
	pubHub = newHub(t, topics.Options{Broker: pb})
	hub = newHub(t, topics.Options{Broker: sb, OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 1, MaxBytes: 8 << 20}})
	return pubHub, hub, drops
}

// behindNodes starts node a, without a WebSocket server, and node b,
// whose hub can fall behind: NATS holds up to 4 messages for it (Pending),
// and gb holds its deliveries until released; b's policy is DropOldest.
func behindNodes(t *testing.T, natsURL string) (a, b *pnode, gb *gatedBroker) {
	t.Helper()
	gb = &gatedBroker{entered: make(chan struct{}), release: make(chan struct{})}
	a = startPNode(t, natsURL, pnodeOptions{noServe: true})
	b = startPNode(t, natsURL, pnodeOptions{
		broker: natsbroker.Options{Pending: 4},
		wrap:   func(br topics.Broker) topics.Broker { gb.b = br; return gb },
		policy: topics.DropOldest,
	})
	return a, b, gb
}
