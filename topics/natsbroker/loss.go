package natsbroker

import (
	"errors"
	"time"
)

// ErrNotSent is wrapped by the error of a publish that did not leave for
// the other nodes: NATS refused it (its reconnect buffer full during an
// outage, a payload above the server's limit, the connection closed).
// What goes to NATS is the message behind an envelope of 27 bytes and the
// topic (a byte more for a topic over 127 bytes): a message within that
// much of the server's max_payload reaches the subscribers on the
// publishing node, not the other nodes.
// The subscribers on the publishing node have it; the message is counted
// in Losses.NotSent. Hub.Publish returns it wrapped, with the NATS error:
//
//	if errors.Is(err, natsbroker.ErrNotSent) { ... }
var ErrNotSent = errors.New("natsbroker: message not sent to other nodes")

// Losses count the messages lost on their way between this broker's hubs
// and the hubs of other nodes, by the side that can know it. NATS core
// delivers at most once: these are counts, not a replay.
type Losses struct {
	// NotSent counts publishes NATS refused (ErrNotSent), on the
	// publishing node.
	NotSent int64
	// Discarded counts publishes nats.go held in its reconnect buffer
	// during an outage and threw away because the connection closed
	// before it reconnected, or because the last hub on the Broker
	// closed first (counted then: the node is shutting down, and closes
	// the connection next). Counted on the publishing node.
	Discarded int64
	// Missing counts messages of other nodes that never arrived here,
	// found on the receiving node by the gap they left in the publisher's
	// numbering of its messages to a topic: lost in a NATS outage (sent
	// to a dead server, published while this node was not subscribed,
	// flushed from the publisher's reconnect buffer before this node had
	// resubscribed) or dropped because a hub fell behind (Behind). A gap
	// is seen when the publisher's next message to the same topic
	// arrives; the hub then reports the missing messages as DropLost for
	// each member that message reaches. Each hub on the Broker finds its
	// own gaps: with several hubs on one Broker, a message all of them
	// missed counts once per hub.
	Missing int64
	// Behind counts messages NATS dropped here because a hub fell
	// Options.Pending messages behind. They are part of Missing once the
	// gap is seen; NATS reports them about once a second, and those of a
	// subscription that ends count too. NATS drops copies: a node whose
	// filters overlap ("a/#" and "a/+") receives a copy of a message for
	// each filter it matches (the hub delivers it once), and Behind
	// counts each copy dropped, so it can exceed the messages missing.
	Behind int64
}

// Total returns the messages lost in all: NotSent, Discarded and Missing
// (whose gaps include what Behind's drops cost).
func (l Losses) Total() int64 { return l.NotSent + l.Discarded + l.Missing }

// The state a receiving link keeps to find gaps, and how long it keeps it.
// A publisher forgets a quiet topic's numbering later than receivers do,
// so that a receiver never mistakes a restarted numbering for a gap.
const (
	forgetAfter    = 10 * time.Minute
	sweepEvery     = forgetAfter / 8
	pubForgetAfter = 2 * forgetAfter
)

// subscription is what the receiving side needs of a NATS subscription:
// whether it is still in place.
type subscription interface{ IsValid() bool }

// tracker is what a receiving link remembers of the nodes that publish to
// it: for each, the last message number it delivered (to recognise the
// second copy of a message that matched two of its subscriptions), and
// for each topic, the last number the publisher gave a message to that
// topic and the subscription it came through. It is owned by the link's
// receiving goroutine. Origins and topics that stay quiet for
// forgetAfter are forgotten.
type tracker struct {
	origins map[uint64]*originState
}

type originState struct {
	seq    uint64
	seen   time.Time
	topics map[string]*topicState
}

type topicState struct {
	seq  uint64
	sub  subscription
	seen time.Time
}

func newTracker() *tracker { return &tracker{origins: make(map[uint64]*originState)} }

// accept records the arrival of message seq of node, its tseq-th to
// topic (0 for a publisher that does not number per topic), through sub.
// It reports whether to deliver it (false for a second copy) and how
// many of node's messages to topic were lost just before it.
//
// A gap counts only while this node has been subscribed to the topic the
// whole time: through the subscription the previous message came by,
// still in place. Otherwise (this node had unsubscribed, or its
// subscriptions changed) the message starts the count afresh, as does a
// number not above the last one (the publisher forgot a quiet topic). A
// restarted publisher is a new node id: it starts afresh too.
func (t *tracker) accept(node, seq uint64, topic string, tseq uint64, sub subscription, now time.Time) (deliver bool, lost uint64) {
	o := t.origins[node]
	if o == nil {
		o = &originState{topics: make(map[string]*topicState)}
		t.origins[node] = o
	} else if seq <= o.seq {
		// NATS sends every copy of a publisher's message before any copy
		// of its next one, so this is a second copy through an
		// overlapping subscription.
		return false, 0
	}
	o.seq, o.seen = seq, now
	if tseq == 0 {
		return true, 0
	}
	ts := o.topics[topic]
	if ts == nil {
		o.topics[topic] = &topicState{seq: tseq, sub: sub, seen: now}
		return true, 0
	}
	if tseq > ts.seq+1 && (ts.sub == sub || ts.sub.IsValid()) {
		lost = tseq - ts.seq - 1
	}
	ts.seq, ts.sub, ts.seen = tseq, sub, now
	return true, lost
}

// forget drops the origins and topics heard from last before now minus
// forgetAfter.
func (t *tracker) forget(now time.Time) {
	for id, o := range t.origins {
		if now.Sub(o.seen) > forgetAfter {
			delete(t.origins, id)
			continue
		}
		for topic, ts := range o.topics {
			if now.Sub(ts.seen) > forgetAfter {
				delete(o.topics, topic)
			}
		}
	}
}

// size returns the origins and topics remembered.
func (t *tracker) size() (origins, topics int) {
	for _, o := range t.origins {
		topics += len(o.topics)
	}
	return len(t.origins), topics
}

// numbering is a publishing link's count of its messages per topic. A
// topic it has published nothing to for between pubForgetAfter and twice
// that is forgotten, and numbered from 1 again. Guarded by link.pubMu.
type numbering struct {
	topics map[string]*topicCount
	gen    uint64 // sweeps so far
	swept  time.Time
}

type topicCount struct {
	seq uint64
	gen uint64 // the sweep period of its last publish
}

// next returns the number of the next message to topic.
func (n *numbering) next(topic string) uint64 {
	c := n.topics[topic]
	if c == nil {
		c = &topicCount{}
		n.topics[topic] = c
	}
	c.seq++
	c.gen = n.gen
	return c.seq
}

// undo takes back the number next just gave topic: the message did not
// leave, and receivers must not count it missing.
func (n *numbering) undo(topic string) {
	if c := n.topics[topic]; c != nil && c.seq > 0 {
		c.seq--
	}
}

// sweep forgets the topics not published to since the previous sweep, at
// most once per pubForgetAfter.
func (n *numbering) sweep(now time.Time) {
	if now.Sub(n.swept) < pubForgetAfter {
		return
	}
	for topic, c := range n.topics {
		if c.gen != n.gen {
			delete(n.topics, topic)
		}
	}
	n.gen++
	n.swept = now
}
