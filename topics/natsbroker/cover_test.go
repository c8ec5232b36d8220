package natsbroker_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

// A node subscribes once for filters that overlap: a filter another of its
// filters covers ("room/lobby" under "room/#") adds no NATS subscription,
// so NATS sends the node one copy of a message, not one per filter. When
// the covering filter goes, the covered one gets its subscription back
// before the covering one ends, and its messages keep coming.
func TestCoveredFiltersShareOneSubscription(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	connect := func() *nats.Conn {
		nc, err := natsbroker.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	ncA, ncB := connect(), connect()

	var mu sync.Mutex
	got := map[string]int{}
	arrived := make(chan struct{}, 100)
	a, err := natsbroker.New(ncA, nil).Open(func(_ context.Context, p topics.Publication) {
		mu.Lock()
		got[p.Topic]++
		mu.Unlock()
		arrived <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := natsbroker.New(ncB, nil).Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	subs := func() int { return ncA.NumSubscriptions() }
	subscribe := func(f string) {
		t.Helper()
		if err := a.Subscribe(f); err != nil {
			t.Fatal(err)
		}
	}
	unsubscribe := func(f string) {
		t.Helper()
		if err := a.Unsubscribe(f); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(topic string) {
		t.Helper()
		m := wsconn.Prepare(messages.Message{Kind: messages.KindText, Payload: []byte(topic)})
		if err := b.Publish(context.Background(), topics.Publication{Topic: topic, Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	// expect waits for n deliveries, then checks there is no other.
	expect := func(n int, want map[string]int) {
		t.Helper()
		for i := 0; i < n; i++ {
			select {
			case <-arrived:
			case <-time.After(5 * time.Second):
				t.Fatalf("%d of %d deliveries arrived", i, n)
			}
		}
		if err := ncB.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := ncA.Flush(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-arrived:
			t.Fatal("a delivery more than expected")
		case <-time.After(50 * time.Millisecond):
		}
		mu.Lock()
		defer mu.Unlock()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s delivered %d times, want %d (all: %v)", k, got[k], v, got)
			}
		}
		clear(got)
	}

	subscribe("room/lobby")
	subscribe("room/+")
	if n := subs(); n != 1 {
		t.Errorf("room/lobby and room/+: %d NATS subscriptions, want 1 (room.*)", n)
	}
	subscribe("room/#") // room.> and room: room.* is covered now
	if n := subs(); n != 2 {
		t.Errorf("with room/#: %d NATS subscriptions, want 2", n)
	}
	subscribe("room") // the subject room/# needs already
	if n := subs(); n != 2 {
		t.Errorf("with room: %d NATS subscriptions, want 2", n)
	}
	publish("room/lobby")
	publish("room")
	publish("room/lobby/east")
	publish("hall")
	expect(3, map[string]int{"room/lobby": 1, "room": 1, "room/lobby/east": 1})
	// NATS sent one copy each: none was dropped or deduplicated.
	if s := ns.NumSubscriptions(); s < 2 {
		t.Errorf("the server holds %d subscriptions", s)
	}

	unsubscribe("room/#")
	if n := subs(); n != 2 {
		t.Errorf("after room/# left: %d NATS subscriptions, want 2 (room.* and room)", n)
	}
	publish("room/lobby")
	publish("room")
	publish("room/lobby/east") // nobody's now
	expect(2, map[string]int{"room/lobby": 1, "room": 1})

	unsubscribe("room/+")
	unsubscribe("room")
	if n := subs(); n != 1 {
		t.Errorf("room/lobby alone: %d NATS subscriptions, want 1", n)
	}
	publish("room/other")
	publish("room/lobby")
	expect(1, map[string]int{"room/lobby": 1})

	unsubscribe("room/lobby")
	unsubscribe("room/lobby") // again: nothing left to end
	if n := subs(); n != 0 {
		t.Errorf("no filters: %d NATS subscriptions", n)
	}
}

// While messages flow, a covered filter takes its subscription back from
// the covering one without a gap and without a duplicate: the hub sees
// every message to its topic once, in order.
func TestCoverHandoverLosesNothing(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	connect := func() *nats.Conn {
		nc, err := natsbroker.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	ncA, ncB := connect(), connect()
	const total = 3000
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	brokerA := natsbroker.New(ncA, nil)
	a, err := brokerA.Open(func(_ context.Context, p topics.Publication) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, string(p.Message.Message().Payload))
		if len(seen) == total {
			close(done)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := natsbroker.New(ncB, nil).Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, f := range []string{"room/#", "room/lobby"} {
		if err := a.Subscribe(f); err != nil {
			t.Fatal(err)
		}
	}
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range total {
			m := wsconn.Prepare(messages.Message{Kind: messages.KindText, Payload: []byte(strconv.Itoa(i))})
			if err := b.Publish(context.Background(), topics.Publication{Topic: "room/lobby", Message: m}); err != nil {
				t.Error(err)
				return
			}
			if i%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	// Hand over in the middle of the stream, back and forth.
	for range 3 {
		time.Sleep(5 * time.Millisecond)
		if err := a.Unsubscribe("room/#"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		if err := a.Subscribe("room/#"); err != nil {
			t.Fatal(err)
		}
	}
	<-published
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		mu.Lock()
		t.Fatalf("%d of %d messages arrived", len(seen), total)
	}
	if err := ncB.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := ncA.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != total {
		t.Fatalf("%d messages delivered, want %d", len(seen), total)
	}
	for i, s := range seen {
		if s != strconv.Itoa(i) {
			t.Fatalf("delivery %d is message %s", i, s)
		}
	}
	if l := brokerA.Losses(); l.Total() != 0 || l.Behind != 0 {
		t.Errorf("losses %+v", l)
	}
}
