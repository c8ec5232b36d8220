package natsbroker_test

// Adversarial checks of the NATS broker beyond the existing tests, on an
// embedded NATS server. Helpers come from multinode_test.go (startNATS,
// stopNATS, waitFor) and outage_test.go (connectBroker, openReceiver).

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// TestAdvTwoHubsOnOneBroker: topics.Broker says "A Broker may serve
// several hubs" and carries publishes "so that a publish on one reaches
// the subscribers of all"; natsbroker.Broker says "Several hubs may share
// it; each gets its own node id". Two hubs' links on one Broker made with
// natsbroker.Connect: what one publishes must reach the other, as it
// reaches a hub on another connection.
func TestAdvTwoHubsOnOneBroker(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	_, shared := connectBroker(t, ns.ClientURL())
	_, elsewhere := connectBroker(t, ns.ClientURL())
	var mu sync.Mutex
	var got []string
	sibling, err := shared.Open(func(_ context.Context, p topics.Publication) {
		mu.Lock()
		got = append(got, string(p.Message.Message().Payload))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sibling.Close()
	if err := sibling.Subscribe("t"); err != nil {
		t.Fatal(err)
	}
	control := openReceiver(t, elsewhere, "t")
	pub, err := shared.Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	text := func(s string) topics.Publication {
		return topics.Publication{Topic: "t", Message: wsconn.Prepare(messages.Text(s))}
	}
	if err := pub.Publish(context.Background(), text("first")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hub on another connection gets it", 5*time.Second, func() bool { return control.delivered.Load() == 1 })
	// A marker from the other connection, published after the server
	// routed the first message: when it reaches the sibling, so has the
	// first, whether the Broker hands it over itself or NATS echoes it.
	marker, err := elsewhere.Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	if err := marker.Publish(context.Background(), text("marker")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the marker reaches the sibling hub", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(got, "marker")
	})
	mu.Lock()
	defer mu.Unlock()
	if slices.Sort(got); !slices.Equal(got, []string{"first", "marker"}) {
		t.Fatalf("the hub sharing the publisher's Broker got %q, want its sibling's publish and the marker, once each", got)
	}
}

// TestAdvAwkwardTopicsCrossNodes: topics whose levels are not NATS tokens
// (empty levels, dots, NATS wildcards, the escape mark, non-ASCII, '$')
// and topics at MaxTopicLen cross nodes intact, each to exactly the
// filters that match it by topics.Match (a '$' topic may also reach a
// link whose filter starts with a wildcard; its hub drops it), and with
// nothing counted lost.
func TestAdvAwkwardTopicsCrossNodes(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	_, brA := connectBroker(t, ns.ClientURL())
	_, brB := connectBroker(t, ns.ClientURL())
	topicList := []string{
		"a/", "/", "//", "a//b", "a.b/c", "*/>", "~x/~", "é/ü", "$sys/x", "a b/c",
		strings.Repeat("/", topics.MaxTopicLen-1),
		strings.Repeat("./", topics.MaxTopicLen/2-1) + "..",
		strings.Repeat("é", topics.MaxTopicLen/2),
		"x/" + strings.Repeat("y", topics.MaxTopicLen-2),
	}
	filters := []string{"+/+", "#", "a/#", "$sys/#", "+", "~x/+", "a//b", "é/+", "x/+"}
	type got struct {
		filter, topic string
		payload       string
	}
	recv := make(chan got, 1024)
	var links []topics.Link
	for _, f := range filters {
		l, err := brB.Open(func(_ context.Context, p topics.Publication) {
			recv <- got{f, p.Topic, string(p.Message.Message().Payload)}
		})
		if err != nil {
			t.Fatal(err)
		}
		links = append(links, l)
		if err := l.Subscribe(f); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, l := range links {
			_ = l.Close()
		}
	}()
	pub, err := brA.Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	want := map[got]int{}
	for _, topic := range topicList {
		for _, f := range filters {
			if topics.Match(f, topic) {
				want[got{f, topic, "p:" + topic}]++
			}
		}
		p := topics.Publication{Topic: topic, Message: wsconn.Prepare(messages.Text("p:" + topic))}
		if err := pub.Publish(context.Background(), p); err != nil {
			t.Fatalf("publish %q: %v", topic, err)
		}
	}
	// Then markers, at least one for each filter.
	markerTopics := []string{"a/z", "$sys/z", "z", "~x/z", "a//b", "é/z", "x/z"}
	for _, topic := range markerTopics {
		for _, f := range filters {
			if topics.Match(f, topic) {
				want[got{f, topic, "p:" + topic}]++
			}
		}
		if err := pub.Publish(context.Background(), topics.Publication{Topic: topic, Message: wsconn.Prepare(messages.Text("p:" + topic))}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[got]int{}
	// A filter is done when every marker it matches has arrived: the
	// last one published came after everything else.
	done := func(f string) bool {
		for _, mt := range markerTopics {
			k := got{f, mt, "p:" + mt}
			if seen[k] < want[k] {
				return false
			}
		}
		return true
	}
	deadline := time.After(10 * time.Second)
	for {
		all := true
		for _, f := range filters {
			all = all && done(f)
		}
		if all {
			break
		}
		select {
		case g := <-recv:
			seen[g]++
		case <-deadline:
			t.Fatal("timed out waiting for the markers")
		}
	}
	// A link is not a hub: the hub, not NATS, hides '$' topics from
	// filters that start with a wildcard (its trie drops them).
	hidden := func(k got) bool { return k.topic[0] == '$' && (k.filter[0] == '+' || k.filter[0] == '#') }
	for k, n := range want {
		if seen[k] != n {
			t.Errorf("filter %q, topic %.40q: delivered %d times, want %d", k.filter, k.topic, seen[k], n)
		}
	}
	for k, n := range seen {
		if want[k] == 0 && !hidden(k) {
			t.Errorf("filter %q got topic %.40q (%d times), which it does not match", k.filter, k.topic, n)
		}
	}
	if l := brB.Losses(); l.Total() != 0 {
		t.Errorf("losses counted: %+v", l)
	}
}
