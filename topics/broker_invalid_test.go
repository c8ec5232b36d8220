package topics_test

import (
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// TestCornerHubIgnoresInvalidBrokerPublications: Broker.Open's deliver
// "ignores a Publication whose Topic is not a valid topic or whose
// Message is nil". A member on "#" (which the trie would match against
// any topic) gets none of them, they count neither as published nor as
// dropped (their Lost is ignored too), and the next valid publication
// arrives first.
func TestCornerHubIgnoresInvalidBrokerPublications(t *testing.T) {
	var drops dropLog
	b := &gdBroker{}
	hub := newHub(t, &topics.Options{Broker: b, OnDrop: drops.add})
	l := serveLoopback(t, hub, nil)
	c, m := l.dial(t)
	if err := m.Subscribe("#"); err != nil {
		t.Fatal(err)
	}
	msg := wsconn.Prepare(messages.Text("bad"))
	for _, p := range []topics.Publication{
		{Topic: "a/+", Message: msg, Lost: 2},
		{Topic: "a/#", Message: msg},
		{Topic: "", Message: msg, Lost: 1},
		{Topic: "a\x00b", Message: msg},
		{Topic: "a/\xff", Message: msg},
		{Topic: strings.Repeat("x", topics.MaxTopicLen+1), Message: msg},
		{Topic: "a", Message: nil, Lost: 3},
	} {
		gdDeliver(b, p)
	}
	gdDeliver(b, topics.Publication{Topic: "ok", Message: wsconn.Prepare(messages.Text("good"))})
	if got := next(t, c); got != "good" {
		t.Fatalf("first message %q, want \"good\"", got)
	}
	if st := hub.Stats(); st.Published != 1 || st.Delivered != 1 || st.Dropped != 0 {
		t.Errorf("Stats %+v, want Published 1, Delivered 1, Dropped 0", st)
	}
	if m.Dropped() != 0 || drops.total() != 0 {
		t.Errorf("member dropped %d, OnDrop got %d; want none", m.Dropped(), drops.total())
	}
}
