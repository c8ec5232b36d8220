package natsbroker_test

// Checks of what the doc comments of package natsbroker promise.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

// gdLink opens a Link on a Broker of its own NATS connection; what it is
// handed goes to got.
func gdLink(t *testing.T, url string, got chan<- string) topics.Link {
	t.Helper()
	nc, err := natsbroker.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l, err := natsbroker.New(nc, &natsbroker.Options{Logger: quiet}).Open(func(_ context.Context, p topics.Publication) {
		if got != nil {
			got <- p.Topic
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func gdPublish(t *testing.T, l topics.Link, topic string) {
	t.Helper()
	p := topics.Publication{Topic: topic, Message: wsconn.Prepare(messages.Text(topic))}
	if err := l.Publish(context.Background(), p); err != nil {
		t.Fatalf("publish %q: %v", topic, err)
	}
}

// gdUntil returns the topics delivered before end.
func gdUntil(t *testing.T, got <-chan string, end string) []string {
	t.Helper()
	var before []string
	timeout := time.After(5 * time.Second)
	for {
		select {
		case topic := <-got:
			if topic == end {
				return before
			}
			before = append(before, topic)
		case <-timeout:
			t.Fatalf("%q never delivered; got %q", end, before)
		}
	}
}

// topics.Broker's Open: "deliver hands over publishes made through the
// Links of other hubs to topics that match the filters the new Link
// subscribed to"; the package doc: "Only the nodes that have subscribers
// for a topic receive its messages", and topics' rule that "#" does not
// match "$sys/load". A Link subscribed to "#" or "+/load" on another node
// is handed "$sys/load": the NATS subjects ('>' and '*') match "$" tokens,
// and the receiving side does not check the topic against its filters. The
// hub then matches nobody, so no client sees it, but the traffic crosses
// and the Link breaks the Broker contract. (A sibling Link on the same
// Broker is not handed it: toSiblings checks with topics.Match.)
func TestGodocWildcardLinkGetsNoDollarTopics(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	for _, filter := range []string{"#", "+/load"} {
		t.Run(filter, func(t *testing.T) {
			got := make(chan string, 16)
			sub := gdLink(t, ns.ClientURL(), got)
			if err := sub.Subscribe(filter); err != nil {
				t.Fatal(err)
			}
			if err := sub.Subscribe("end"); err != nil {
				t.Fatal(err)
			}
			pub := gdLink(t, ns.ClientURL(), nil)
			gdPublish(t, pub, "$sys/load")
			gdPublish(t, pub, "end")
			if before := gdUntil(t, got, "end"); len(before) != 0 {
				t.Fatalf("a Link subscribed to %q was handed %q, which %q does not match (topics.Match = %v)",
					filter, before, filter, topics.Match(filter, "$sys/load"))
			}
		})
	}
}

// topics.Link: "Close disconnects the hub: deliver is not called after
// Close returns". natsbroker's Link after Close: a second Close returns
// nil, Subscribe fails, Unsubscribe of a filter it had returns nil, and
// publishes from another node are not handed over.
func TestGodocLinkAfterClose(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	got := make(chan string, 16)
	sub := gdLink(t, ns.ClientURL(), got)
	if err := sub.Subscribe("t"); err != nil {
		t.Fatal(err)
	}
	pub := gdLink(t, ns.ClientURL(), nil)
	gdPublish(t, pub, "t")
	gdUntil(t, got, "t")
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := sub.Subscribe("u"); err == nil {
		t.Error("Subscribe after Close succeeded")
	}
	if err := sub.Unsubscribe("t"); err != nil {
		t.Errorf("Unsubscribe after Close = %v", err)
	}
	// A third Link subscribed to "t" sees the publish: when it has, the
	// closed one would have had it too.
	witness := make(chan string, 16)
	w := gdLink(t, ns.ClientURL(), witness)
	if err := w.Subscribe("t"); err != nil {
		t.Fatal(err)
	}
	gdPublish(t, pub, "t")
	gdUntil(t, witness, "t")
	select {
	case topic := <-got:
		t.Errorf("deliver called with %q after Close returned", topic)
	default:
	}
}

// Open: "it fails when the NATS connection is closed".
func TestGodocOpenOnClosedConnection(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	nc, err := natsbroker.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	b := natsbroker.New(nc, &natsbroker.Options{Logger: quiet})
	nc.Close()
	if _, err := b.Open(func(context.Context, topics.Publication) {}); err == nil {
		t.Fatal("Open on a closed connection succeeded")
	}
	if _, err := topics.NewHub(&topics.Options{Broker: b, Logger: quiet}); err == nil || errors.Is(err, topics.ErrClosed) {
		t.Fatalf("NewHub = %v, want the broker's error", err)
	}
}

// topics.Key: "The key travels with the message through the broker";
// Publication.Key: "the key the publisher gave with the Key option, or ""
// for the default". A Link on another node and a sibling Link on the
// publisher's own Broker are both handed the key as given, and "" stays "".
func TestGodocKeyTravelsThroughTheBroker(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	open := func(b *natsbroker.Broker, got chan<- topics.Publication) topics.Link {
		l, err := b.Open(func(_ context.Context, p topics.Publication) { got <- p })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		if err := l.Subscribe("t/+"); err != nil {
			t.Fatal(err)
		}
		return l
	}
	broker := func() *natsbroker.Broker {
		nc, err := natsbroker.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return natsbroker.New(nc, &natsbroker.Options{Logger: quiet})
	}
	local, remote := broker(), broker()
	remoteGot, siblingGot := make(chan topics.Publication, 4), make(chan topics.Publication, 4)
	open(remote, remoteGot)
	open(local, siblingGot)
	pub, err := local.Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	for _, key := range []string{"k/é \x00.*>", ""} {
		p := topics.Publication{Topic: "t/1", Key: key, Message: wsconn.Prepare(messages.Binary([]byte{1, 2}))}
		if err := pub.Publish(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		for name, ch := range map[string]chan topics.Publication{"remote": remoteGot, "sibling": siblingGot} {
			select {
			case got := <-ch:
				if got.Key != key || got.Topic != "t/1" || got.Message.Message().Kind != messages.KindBinary {
					t.Errorf("%s Link handed key %q topic %q kind %v, want key %q", name, got.Key, got.Topic, got.Message.Message().Kind, key)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s Link handed nothing", name)
			}
		}
	}
}

// The package doc: "A topic travels on the subject Options.Prefix + "." +
// its levels, one token per level", escaped levels included, and topics'
// rules allow any topic of up to MaxTopicLen bytes. Topics at that limit
// whose every level needs escaping (1,024 empty levels, 512 levels of
// ".", one level of 1,024 bytes of "é") make the longest subjects, and
// still cross to a node subscribed to "#" intact.
func TestGodocLongestSubjectsCross(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	got := make(chan string, 16)
	sub := gdLink(t, ns.ClientURL(), got)
	if err := sub.Subscribe("#"); err != nil {
		t.Fatal(err)
	}
	pub := gdLink(t, ns.ClientURL(), nil)
	for _, topic := range []string{
		strings.Repeat("/", topics.MaxTopicLen-1),
		strings.Repeat("./", topics.MaxTopicLen/2-1) + ".",
		strings.Repeat("é", topics.MaxTopicLen/2),
	} {
		if len(topic) > topics.MaxTopicLen {
			t.Fatalf("topic of %d bytes", len(topic))
		}
		gdPublish(t, pub, topic)
		gdPublish(t, pub, "end")
		if before := gdUntil(t, got, "end"); len(before) != 1 || before[0] != topic {
			t.Fatalf("a topic of %d bytes arrived as %d topics", len(topic), len(before))
		}
	}
}
