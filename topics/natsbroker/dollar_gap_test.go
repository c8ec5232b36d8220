package natsbroker_test

// Review of the delivery promises across nodes for '$' topics, which NATS
// wildcards match though topics wildcards do not. Helpers come from
// promises_test.go (startPNode, join, expect, publish, flush) and
// multinode_test.go (startNATS).

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/topics"
)

// TestCornerDollarTopicGapAcrossResubscribeIsNotLost: docs/scaling.md
// "What an outage loses": "The counts err on the side of missing a loss,
// never of counting one that did not happen: ... a gap that spans a
// change of the receiving node's subscriptions is not counted". Node B
// has a client on "#" (NATS '>', which also carries '$' topics to the
// node, where the hub drops them) and one on "$sys/x". The "$sys/x"
// client leaves; node A publishes m2 to "$sys/x", which no member of B
// subscribes to; a new client subscribes to "$sys/x" and A publishes m3.
// Nothing was lost: m2 was published while B had no subscriber to the
// topic. The new client must get m3 with no DropLost, and B's broker must
// count nothing missing.
func TestCornerDollarTopicGapAcrossResubscribeIsNotLost(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	var lost []topics.Drop
	lostCh := make(chan topics.Drop, 16)
	a := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
	b := startPNode(t, ns.ClientURL(), pnodeOptions{onDrop: func(d topics.Drop) { lostCh <- d }})

	hash, _ := b.join(t, "", "#")
	first, firstM := b.join(t, "", "$sys/x")
	publish(t, a.hub, "$sys/x", "m1")
	expect(t, first, "m1")

	// The "$sys/x" client leaves; once Drain says ErrLeft its member has
	// left and B's NATS subscription to the topic is gone.
	_ = first.Close()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	for {
		err := firstM.Drain(ctx)
		if errors.Is(err, topics.ErrLeft) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the member did not leave")
		}
		time.Sleep(time.Millisecond)
	}
	flush(t, b.nc)

	// m2 reaches B through '>' only, and no member; the marker after it
	// (same publisher, same connection) shows B has handled it.
	publish(t, a.hub, "$sys/x", "m2")
	publish(t, a.hub, "mark", "marker")
	expect(t, hash, "marker")

	second, secondM := b.join(t, "", "$sys/x")
	publish(t, a.hub, "$sys/x", "m3")
	expect(t, second, "m3")
	publish(t, a.hub, "mark", "marker2")
	expect(t, hash, "marker2")

	for len(lostCh) > 0 {
		lost = append(lost, <-lostCh)
	}
	if l := b.broker.Losses(); l.Missing != 0 || secondM.Dropped() != 0 || b.hub.Stats().Dropped != 0 || len(lost) != 0 {
		t.Errorf("nothing was lost (m2 was published while B had no subscriber to $sys/x), yet B's broker counts %+v, "+
			"the new member dropped %d, the hub %d, OnDrop got %+v", l, secondM.Dropped(), b.hub.Stats().Dropped, lost)
	}
}
