package natsbroker

import (
	"fmt"
	"testing"
	"time"
)

// sub stands for a NATS subscription in the tracker's bookkeeping.
type sub struct{ valid bool }

func (s *sub) IsValid() bool { return s.valid }

func TestTrackerCountsGapsPerPublisherAndTopic(t *testing.T) {
	tr := newTracker()
	now := time.Now()
	s := &sub{valid: true}
	steps := []struct {
		node, seq uint64
		topic     string
		tseq      uint64
		deliver   bool
		lost      uint64
		what      string
	}{
		{1, 1, "a", 1, true, 0, "first message from node 1"},
		{1, 1, "a", 1, false, 0, "second copy through an overlapping filter"},
		{1, 2, "b", 1, true, 0, "another topic starts its own count"},
		{1, 5, "a", 4, true, 2, "two messages to a lost"},
		{1, 6, "c", 9, true, 0, "a topic first heard of mid-stream is no gap"},
		{2, 1, "a", 1, true, 0, "another node"},
		{2, 2, "a", 3, true, 1, "one message of node 2 lost"},
		{1, 7, "a", 1, true, 0, "node 1 forgot a quiet topic and counts from 1"},
		{1, 8, "a", 2, true, 0, "and goes on"},
		{3, 1, "b", 7, true, 0, "a restarted publisher is a new node id"},
		{1, 9, "x", 0, true, 0, "a version 1 message is not counted"},
	}
	for _, st := range steps {
		deliver, lost := tr.accept(st.node, st.seq, st.topic, st.tseq, s, now)
		if deliver != st.deliver || lost != st.lost {
			t.Errorf("%s: deliver %v lost %d, want %v %d", st.what, deliver, lost, st.deliver, st.lost)
		}
	}
}

// A gap that spans a change of this node's subscriptions may be messages
// it did not subscribe to: it starts afresh.
func TestTrackerIgnoresGapsAcrossUnsubscribe(t *testing.T) {
	tr := newTracker()
	now := time.Now()
	old, resub := &sub{valid: true}, &sub{valid: true}
	tr.accept(1, 1, "a", 1, old, now)
	old.valid = false
	if _, lost := tr.accept(1, 9, "a", 9, resub, now); lost != 0 {
		t.Errorf("lost %d across a resubscription", lost)
	}
	// Through another subscription still in place (overlapping filters),
	// a gap is a gap.
	other := &sub{valid: true}
	if _, lost := tr.accept(1, 12, "a", 12, other, now); lost != 2 {
		t.Errorf("lost %d, want 2", lost)
	}
}

func TestTrackerForgetsQuietOriginsAndTopics(t *testing.T) {
	tr := newTracker()
	start := time.Now()
	s := &sub{valid: true}
	for node := uint64(1); node <= 100; node++ {
		for i := range 50 {
			tr.accept(node, uint64(i+1), fmt.Sprint("t/", i), 1, s, start)
		}
	}
	if o, n := tr.size(); o != 100 || n != 5000 {
		t.Fatalf("remembers %d origins and %d topics, want 100 and 5000", o, n)
	}
	// Node 1 keeps publishing to one topic; everything else goes quiet.
	later := start.Add(forgetAfter / 2)
	tr.accept(1, 100, "t/0", 2, s, later)
	tr.forget(start.Add(forgetAfter + time.Second))
	if o, n := tr.size(); o != 1 || n != 1 {
		t.Fatalf("after forgetAfter: %d origins and %d topics, want 1 and 1", o, n)
	}
	tr.forget(later.Add(forgetAfter + time.Second))
	if o, n := tr.size(); o != 0 || n != 0 {
		t.Fatalf("at the end: %d origins and %d topics, want none", o, n)
	}
	// Forgotten, node 1 starts afresh: no gap.
	if _, lost := tr.accept(1, 500, "t/0", 40, s, later.Add(2*forgetAfter)); lost != 0 {
		t.Errorf("lost %d after forgetting", lost)
	}
}

func TestNumberingForgetsQuietTopics(t *testing.T) {
	start := time.Now()
	n := numbering{topics: make(map[string]*topicCount), swept: start}
	for i := range 1000 {
		n.next(fmt.Sprint("t/", i))
	}
	if got := n.next("t/0"); got != 2 {
		t.Fatalf("second message to t/0 numbered %d", got)
	}
	n.undo("t/0")
	if got := n.next("t/0"); got != 2 {
		t.Fatalf("after undo, numbered %d, want 2 again", got)
	}
	n.sweep(start.Add(pubForgetAfter)) // all were published to in this period
	if len(n.topics) != 1000 {
		t.Fatalf("first sweep kept %d topics", len(n.topics))
	}
	n.next("t/0")
	n.sweep(start.Add(2 * pubForgetAfter))
	if len(n.topics) != 1 {
		t.Fatalf("second sweep kept %d topics, want 1", len(n.topics))
	}
	// A publisher forgets later than receivers, who then start afresh.
	if pubForgetAfter <= forgetAfter+sweepEvery {
		t.Errorf("publishers forget after %v, receivers after up to %v", pubForgetAfter, forgetAfter+sweepEvery)
	}
	n.sweep(start.Add(3 * pubForgetAfter))
	if got := n.next("t/0"); got != 1 {
		t.Errorf("a forgotten topic is numbered from %d, want 1", got)
	}
}
