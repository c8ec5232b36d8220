package topics

import (
	"fmt"
	"time"

	"github.com/colibri-ws/colibri/frames"
)

// Policy says what happens to a message that does not fit in a member's
// queue, which is full when it holds Limits.MaxMessages messages or when
// the message would take it past Limits.MaxBytes. A Policy applies where
// it is set, from the most specific place: a subscription
// (Member.SubscribeWith), then the member (MemberOptions.Policy), then the
// hub (Options.Policy), then the default, Disconnect with 1013 Try Again
// Later. The zero Policy means "not set here".
//
// Every message a policy gives up on is counted and reported (see Drop):
// no policy drops silently.
type Policy struct {
	mode    policyMode
	timeout time.Duration
	code    frames.CloseCode
}

type policyMode uint8

const (
	modeUnset policyMode = iota
	modeDropOldest
	modeDropNewest
	modeKeepLatest
	modeBlock
	modeDisconnect
)

// The policies that need no parameter.
var (
	// DropOldest makes room by dropping the oldest queued messages. The
	// member stays connected and always gets the most recent messages,
	// with a gap the client cannot see unless the application numbers
	// its messages.
	DropOldest = Policy{mode: modeDropOldest}

	// DropNewest keeps the queue as it is and drops the message that does
	// not fit. The member gets an unbroken prefix of the stream, then
	// skips messages until it catches up.
	DropNewest = Policy{mode: modeDropNewest}

	// KeepLatest is for state feeds, where only the newest value matters:
	// a message replaces the queued message with the same key (the Key
	// option of Publish, by default the topic) in place, so at most one
	// message per key waits. Messages keep their order per key; one that
	// replaces another goes out at the position of the one it replaced,
	// so messages with different keys may be reordered. When the queue
	// is full and holds no message with the key, KeepLatest behaves like
	// DropOldest. A replaced message is reported with DropReplaced. When
	// the new message is larger and no longer fits in its place, the
	// oldest other messages make room (DropEvicted): the newest value is
	// kept. Only when the messages being written leave no room for it is
	// it refused (DropRefused) and the queued value kept.
	KeepLatest = Policy{mode: modeKeepLatest}
)

// Block makes the publisher wait, at most timeout (or until its context
// ends), for the member's queue to have room; the message is dropped
// with DropTimedOut if it does not. Publish first delivers to every
// member that has room and only then waits, so a blocked member delays
// its publisher but not the other members of that publish. Messages that
// arrive from a Broker are delivered by the broker's one receiving
// goroutine, so under Block a slow member delays every message that
// reaches this node through the broker by up to timeout. Use Block for
// small audiences that must not miss messages and can be trusted to
// read. Block panics if timeout is not positive.
func Block(timeout time.Duration) Policy {
	if timeout <= 0 {
		panic(fmt.Sprintf("topics: Block timeout %v must be positive", timeout))
	}
	return Policy{mode: modeBlock, timeout: timeout}
}

// Disconnect closes the member's connection with code when a message
// does not fit: frames.CloseTryAgainLater (1013, the default policy's
// code) tells the client the server is overloaded and it may reconnect;
// frames.ClosePolicyViolation (1008) says it broke the rules by reading
// too slowly. The message that did not fit, the messages still queued and
// every later message for the member are reported with DropDisconnected.
// The CLOSE frame goes out ahead of queued data as soon as the member's
// sender is not in the middle of a write; a client that does not read at
// all is cut off by wsconn's Config.WriteTimeout. Disconnect panics for
// any code but 1008 and 1013.
func Disconnect(code frames.CloseCode) Policy {
	if code != frames.ClosePolicyViolation && code != frames.CloseTryAgainLater {
		panic(fmt.Sprintf("topics: Disconnect code %v is neither 1008 nor 1013", code))
	}
	return Policy{mode: modeDisconnect, code: code}
}

// defaultPolicy applies where no policy is set: Disconnect with 1013 Try
// Again Later. A gap the client cannot see corrupts whatever state it
// builds from the stream (a chat history, a document, a dashboard),
// while a close with 1013 is a signal every WebSocket client gets and
// can act on: reconnect and fetch the state afresh. Applications whose
// clients tolerate gaps choose DropOldest, DropNewest or KeepLatest.
var defaultPolicy = Disconnect(frames.CloseTryAgainLater)

// String describes p: "drop-oldest", "block(2s)", "disconnect(1013)".
func (p Policy) String() string {
	switch p.mode {
	case modeDropOldest:
		return "drop-oldest"
	case modeDropNewest:
		return "drop-newest"
	case modeKeepLatest:
		return "keep-latest"
	case modeBlock:
		return fmt.Sprintf("block(%v)", p.timeout)
	case modeDisconnect:
		return fmt.Sprintf("disconnect(%d)", int(p.code))
	}
	return "unset"
}

// Name is p's kind without its parameters ("drop-oldest", "block",
// "disconnect"): a label for metrics, with few values.
func (p Policy) Name() string {
	switch p.mode {
	case modeBlock:
		return "block"
	case modeDisconnect:
		return "disconnect"
	}
	return p.String()
}

// or returns p, or q when p is not set.
func (p Policy) or(q Policy) Policy {
	if p.mode == modeUnset {
		return q
	}
	return p
}

// DropReason says why a message did not reach a member.
type DropReason uint8

// The reasons a message is dropped.
const (
	// DropEvicted: the message was queued and made room for a newer one
	// (DropOldest, or KeepLatest when the newer one has no queued value of
	// its key to replace, or is larger than that value and no longer fits
	// in its place).
	DropEvicted DropReason = iota + 1
	// DropRefused: the message did not fit and DropNewest (or a queue
	// whose room is taken by the message being written) turned it away.
	DropRefused
	// DropReplaced: a newer message with the same key took its place
	// (KeepLatest).
	DropReplaced
	// DropTimedOut: Block waited its timeout, or the publisher's context
	// ended, before the queue had room.
	DropTimedOut
	// DropDisconnected: the member is being disconnected by Disconnect.
	DropDisconnected
	// DropTooLarge: the message alone is larger than the member's
	// Limits.MaxBytes, so it can never be queued, whatever the policy.
	DropTooLarge
	// DropLeft: the member's connection ended with the message still
	// queued, or being written but not handed to the socket whole, or
	// while a Block publisher waited for room for it.
	DropLeft
	// DropLost: the broker lost the message on its way from another node,
	// before this hub had it: natsbroker reports the messages a NATS
	// outage or a full receive queue cost (Publication.Lost). The hub
	// learns of it when the publisher's next message to the topic arrives,
	// and reports it for the members that message reaches, with Count
	// holding how many messages were lost in a row and Bytes zero.
	DropLost
)

// String returns the reason in a word or two: "evicted", "timed out".
func (r DropReason) String() string {
	switch r {
	case DropEvicted:
		return "evicted"
	case DropRefused:
		return "refused"
	case DropReplaced:
		return "replaced"
	case DropTimedOut:
		return "timed out"
	case DropDisconnected:
		return "disconnected"
	case DropTooLarge:
		return "too large"
	case DropLeft:
		return "left"
	case DropLost:
		return "lost"
	}
	return fmt.Sprintf("DropReason(%d)", uint8(r))
}

// Drop describes messages that did not reach one member: one message,
// except with DropLost, where a broker reports Count messages lost in a
// row at once. Options.OnDrop receives one Drop per message (or run of
// lost messages) per member.
type Drop struct {
	// Member is the member that did not get the message.
	Member *Member
	// Topic is the message's topic.
	Topic string
	// Bytes is the size of the message's frame, uncompressed (as Limits
	// count it); zero with DropLost,
	// whose messages the hub never saw.
	Bytes int
	// Count is the number of messages the Drop stands for: 1, or with
	// DropLost the number lost in a row. Member.Dropped and Stats.Dropped
	// add it up.
	Count int
	// Reason says why.
	Reason DropReason
	// Policy is the policy that applied: the subscription's when a publish
	// did not fit (also when its Block publisher was still waiting as the
	// member left), the member's when its connection ended with messages
	// queued or being written.
	Policy Policy
}
