package natsbroker_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

// r3NATS starts an embedded NATS server on 127.0.0.1, shut down at
// cleanup.
func r3NATS(t *testing.T) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns.ClientURL()
}

// docs/topics.md, "Exactly once per node": two filters that overlap
// without one covering the other ("room/+" and "+/lobby") keep a
// subscription each, NATS sends the node two copies of a publish to
// "room/lobby", and the node delivers it once.
func TestPartlyOverlappingFiltersGetTwoCopiesDeliveredOnce(t *testing.T) {
	url := r3NATS(t)
	quietLog := slog.New(slog.DiscardHandler)
	connect := func() *natsbroker.Broker {
		nc, err := natsbroker.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return natsbroker.New(nc, &natsbroker.Options{Logger: quietLog})
	}

	var delivered atomic.Int64
	subNC, err := natsbroker.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(subNC.Close)
	sub, err := natsbroker.New(subNC, &natsbroker.Options{Logger: quietLog}).Open(func(context.Context, topics.Publication) {
		delivered.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	for _, f := range []string{"room/+", "+/lobby"} {
		if err := sub.Subscribe(f); err != nil {
			t.Fatal(err)
		}
	}

	pub, err := connect().Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	if err := pub.Publish(context.Background(), topics.Publication{Topic: "room/lobby", Message: wsconn.Prepare(messages.Text("hi"))}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for delivered.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Both copies are in once NATS answered a flush sent after them.
	time.Sleep(50 * time.Millisecond)
	if err := subNC.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the second copy's way through the hub
	if got := delivered.Load(); got != 1 {
		t.Fatalf("the hub got the publish %d times, want once", got)
	}
	if in := subNC.Stats().InMsgs; in != 2 {
		t.Errorf("NATS sent the node %d copies of one publish its two subscriptions (room/+ and +/lobby) match, want 2", in)
	}
}
