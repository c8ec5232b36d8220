// Package topics fans messages out to WebSocket connections by topic:
// connections subscribe with MQTT-style filters, publishes reach every
// matching subscriber, and each subscriber has a bounded queue with a
// policy for when it falls behind. A Broker carries publishes between
// nodes. docs/topics.md is the long-form guide.
//
// # Hubs and members
//
// A Hub holds the subscriptions of a server. A connection's handler
// joins it and gets a Member: the connection's subscriptions and its
// queue, emptied by a sender task in the connection's group that runs only
// while the queue has messages.
//
//	m := hub.Join(s.Conn, nil)
//	if err := m.Subscribe("room/lobby"); err != nil { ... }
//	for msg := range in.Messages(0) {
//		m.Publish(ctx, "room/lobby", msg)
//	}
//
// A member's publish reaches the other subscribers, and the member too
// only with ToSelf. Hub.Publish publishes from anywhere. When the
// connection ends, its member leaves: its subscriptions end and its queue
// is discarded. Hub.Subscribers counts the members a topic reaches.
// See Example.
//
// # Topics and filters
//
// A topic is a string of levels separated by '/': "room/lobby",
// "prices/eur/usd". Levels may be empty ("a//b" has three). A filter is a
// topic in which a level may be a wildcard: '+' matches exactly one level
// and '#', only as the last level, matches any number of levels,
// including none, so "room/#" matches "room", "room/lobby" and
// "room/lobby/42". Topics and filters are non-empty UTF-8, at most
// MaxTopicLen bytes, without U+0000; wildcards are refused in a topic
// (ErrInvalidTopic) and must fill their level in a filter
// (ErrInvalidFilter). As in MQTT, a topic whose first level starts with
// '$' is not matched by a filter that starts with a wildcard: "#" does not
// match "$sys/load", "$sys/#" does. Match applies these rules to one
// filter and one topic; the hub applies them with a trie, at a cost that
// grows with the topic's length, not with the number of subscriptions.
//
// A publish reaches each member once, even when several of its filters
// match; the most specific of them decides the policy.
//
// # Backpressure
//
// A member's queue is bounded in bytes and in messages (Limits). When a
// message does not fit, the Policy of the subscription (or else of the
// member, the hub, the default) decides: DropOldest, DropNewest,
// KeepLatest (one message per key, for state feeds), Block (the
// publisher waits, up to a timeout) or Disconnect (close with 1013 or
// 1008). The default is Disconnect with 1013 Try Again Later. Apart
// from Block, a publish never waits for a member, so a slow member costs
// the others nothing. Member.Buffered reports what a member holds;
// Member.Drain waits until it has all been written.
//
// # Drops
//
// Every message a member does not get is counted (Member.Dropped,
// Hub.Stats) and passed to Options.OnDrop with its DropReason; without an
// OnDrop the first drop of each member is logged. Messages a broker lost
// between nodes, which the hub never saw, are counted too when the broker
// can tell (DropLost, Publication.Lost).
//
// # Encode once
//
// A publish frames its message once (wsconn.Prepare); all the members
// queue the same *wsconn.Prepared and their senders write its bytes as
// they are. Brokers that cross nodes frame it once more on each node.
//
// # Brokers
//
// A Hub without a Broker serves one process. The natsbroker package
// connects the hubs of several nodes through NATS; InProcess connects
// hubs within one process.
package topics
