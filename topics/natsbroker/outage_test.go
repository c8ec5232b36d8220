package natsbroker_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

// receiver is a Link that counts what it is handed.
type receiver struct {
	link      topics.Link
	delivered atomic.Int64
	lost      atomic.Int64 // the sum of Publication.Lost
}

func openReceiver(t *testing.T, b *natsbroker.Broker, filter string) *receiver {
	t.Helper()
	r := &receiver{}
	link, err := b.Open(func(_ context.Context, p topics.Publication) {
		r.delivered.Add(1)
		r.lost.Add(int64(p.Lost))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = link.Close() })
	if err := link.Subscribe(filter); err != nil {
		t.Fatal(err)
	}
	r.link = link
	return r
}

func connectBroker(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, *natsbroker.Broker) {
	t.Helper()
	opts = append([]nats.Option{nats.ReconnectWait(20 * time.Millisecond), nats.ReconnectJitter(0, 0)}, opts...)
	nc, err := natsbroker.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, natsbroker.New(nc, &natsbroker.Options{Logger: quiet})
}

func publication(topic string) topics.Publication {
	return topics.Publication{Topic: topic, Message: wsconn.Prepare(messages.Text("m"))}
}

// The NATS server dies in the middle of a steady stream and comes back on
// the same port. Every message sent is either delivered on the other node
// or counted lost on one side: refused by NATS on the publishing node
// (with a reconnect buffer small enough to fill during the outage), or
// missing on the receiving node.
func TestNATSOutageLossesAreCounted(t *testing.T) {
	ns := startNATS(t, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	defer func() { stopNATS(ns) }()
	ncA, brA := connectBroker(t, ns.ClientURL(), nats.ReconnectBufSize(2048))
	ncB, brB := connectBroker(t, ns.ClientURL())
	recv := openReceiver(t, brB, "room/#")
	pubLink, err := brA.Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	defer pubLink.Close()

	var sent, refused atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			sent.Add(1)
			err := pubLink.Publish(context.Background(), publication("room/lobby"))
			if errors.Is(err, natsbroker.ErrNotSent) {
				refused.Add(1)
			} else if err != nil {
				t.Errorf("publish: %v", err)
			}
		}
	})

	waitFor(t, "messages flow", 10*time.Second, func() bool { return recv.delivered.Load() > 200 })
	stopNATS(ns)
	waitFor(t, "both nodes notice", 10*time.Second, func() bool { return !ncA.IsConnected() && !ncB.IsConnected() })
	waitFor(t, "the reconnect buffer fills", 10*time.Second, func() bool { return refused.Load() > 0 })
	ns = startNATS(t, port)
	waitFor(t, "both nodes reconnect", 10*time.Second, func() bool { return ncA.IsConnected() && ncB.IsConnected() })
	before := recv.delivered.Load()
	waitFor(t, "messages flow again", 10*time.Second, func() bool { return recv.delivered.Load() > before+200 })
	close(stop)
	wg.Wait()

	la := brA.Losses()
	accounted := func() int64 {
		return recv.delivered.Load() + la.NotSent + la.Discarded + brB.Losses().Missing
	}
	waitFor(t, "the last messages arrive", 10*time.Second, func() bool { return accounted() >= sent.Load() })
	time.Sleep(50 * time.Millisecond) // time for a message too many
	lb := brB.Losses()
	t.Logf("sent %d, delivered %d, refused on A %d, discarded on A %d, missing on B %d",
		sent.Load(), recv.delivered.Load(), la.NotSent, la.Discarded, lb.Missing)
	if got := accounted(); got != sent.Load() {
		t.Errorf("delivered + counted lost = %d, sent %d", got, sent.Load())
	}
	if la.NotSent != refused.Load() {
		t.Errorf("A counted %d refused, Publish returned ErrNotSent %d times", la.NotSent, refused.Load())
	}
	if lb.Missing != recv.lost.Load() {
		t.Errorf("B counted %d missing, the hub was told of %d", lb.Missing, recv.lost.Load())
	}
	if la.Missing != 0 || lb.NotSent != 0 || lb.Discarded != 0 || lb.Behind != 0 {
		t.Errorf("unexpected losses: A %+v, B %+v", la, lb)
	}
	if brA.Lost() != la.Total() || brB.Lost() != lb.Total() {
		t.Errorf("Lost disagrees with Losses")
	}
}

// Publishes held in the reconnect buffer are counted as discarded when
// the connection closes before it could send them.
func TestNATSReconnectBufferDiscardedOnClose(t *testing.T) {
	for _, closeFirst := range []string{"connection", "hub"} {
		t.Run(closeFirst, func(t *testing.T) {
			ns := startNATS(t, -1)
			ncA, brA := connectBroker(t, ns.ClientURL())
			_, brB := connectBroker(t, ns.ClientURL())
			recv := openReceiver(t, brB, "t")
			pubLink, err := brA.Open(func(context.Context, topics.Publication) {})
			if err != nil {
				t.Fatal(err)
			}
			if err := pubLink.Publish(context.Background(), publication("t")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the first message", 5*time.Second, func() bool { return recv.delivered.Load() == 1 })
			stopNATS(ns)
			waitFor(t, "A notices", 10*time.Second, func() bool { return !ncA.IsConnected() })
			for range 10 {
				if err := pubLink.Publish(context.Background(), publication("t")); err != nil {
					t.Fatal(err)
				}
			}
			if closeFirst == "connection" {
				ncA.Close()
				waitFor(t, "the discarded are counted", 5*time.Second, func() bool { return brA.Losses().Discarded == 10 })
				_ = pubLink.Close()
			} else {
				_ = pubLink.Close()
				ncA.Close()
			}
			if l := brA.Losses(); l.Discarded != 10 || l.Total() != 10 {
				t.Errorf("losses %+v, want 10 discarded", l)
			}
		})
	}
}

// Neither a restarted publisher (a new node id) nor a receiving node that
// unsubscribed and subscribed again counts what it was not meant to get.
func TestNATSNoLossCountedWithoutLoss(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	ncA, brA := connectBroker(t, ns.ClientURL())
	ncB, brB := connectBroker(t, ns.ClientURL())
	recv := openReceiver(t, brB, "t")
	publish := func(l topics.Link, topic string, n int) {
		t.Helper()
		for range n {
			if err := l.Publish(context.Background(), publication(topic)); err != nil {
				t.Fatal(err)
			}
		}
	}
	first, err := brA.Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	publish(first, "t", 5)
	publish(first, "other", 5) // B is not subscribed: no gap in t's count
	publish(first, "t", 5)
	waitFor(t, "first's messages", 5*time.Second, func() bool { return recv.delivered.Load() == 10 })
	_ = first.Close()

	second, err := brA.Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	publish(second, "t", 3)
	waitFor(t, "second's messages", 5*time.Second, func() bool { return recv.delivered.Load() == 13 })

	if err := recv.link.Unsubscribe("t"); err != nil {
		t.Fatal(err)
	}
	if err := ncB.Flush(); err != nil {
		t.Fatal(err)
	}
	publish(second, "t", 4)             // B is not subscribed
	if err := ncA.Flush(); err != nil { // they reach the server before B subscribes again
		t.Fatal(err)
	}
	if err := recv.link.Subscribe("t"); err != nil {
		t.Fatal(err)
	}
	if err := ncB.Flush(); err != nil { // the server has the subscription before A publishes
		t.Fatal(err)
	}
	publish(second, "t", 2)
	waitFor(t, "the messages after resubscribing", 5*time.Second, func() bool { return recv.delivered.Load() >= 15 })
	if n := recv.delivered.Load(); n != 15 {
		t.Fatalf("%d delivered, want 15", n)
	}
	time.Sleep(50 * time.Millisecond)
	if l := brB.Losses(); l.Total() != 0 || recv.lost.Load() != 0 {
		t.Errorf("B counted losses %+v (told the hub of %d), want none", l, recv.lost.Load())
	}
}
