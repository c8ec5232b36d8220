package topics

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// Default queue limits of a member, used where Limits leaves a field zero.
const (
	DefaultMaxBytes    = 1 << 20
	DefaultMaxMessages = 256
)

// Limits bound a member's queue. Both count what the member holds: the
// messages waiting and those its sender is writing (up to 16 at once).
// Bytes are counted as the message's frame, header and payload,
// uncompressed (Prepared.Len: what a connection without compression
// sends); a message's bytes are shared by
// every member it was published to, so the memory a hub holds is at most,
// and usually far below, the sum of its members' limits.
type Limits struct {
	// MaxBytes is the most bytes a member may hold. Default
	// DefaultMaxBytes (1 MiB). A message larger than MaxBytes is never
	// queued: it is dropped with DropTooLarge.
	MaxBytes int
	// MaxMessages is the most messages a member may hold. Default
	// DefaultMaxMessages (256).
	MaxMessages int
}

func (l Limits) or(d Limits) Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxMessages <= 0 {
		l.MaxMessages = d.MaxMessages
	}
	return l
}

// Options configure a Hub. The zero value (or a nil *Options) means the
// documented defaults.
type Options struct {
	// Broker carries publishes to and from the hubs of other nodes.
	// Default nil: this hub only, with no setup and no cost.
	Broker Broker

	// Policy applies to members and subscriptions that set none. Default
	// Disconnect with 1013 Try Again Later.
	Policy Policy

	// Limits bound each member's queue unless MemberOptions say otherwise.
	// Defaults DefaultMaxBytes and DefaultMaxMessages.
	Limits Limits

	// OnDrop is called once for every Drop: for every message a member
	// does not get, except that a run of messages lost on their way from
	// another node (DropLost) is one Drop whose Count says how many, in
	// the goroutine that gave up on it (a publisher, the broker's, or the
	// member's clean-up when its connection ends, which the connection
	// waits for: see wsconn.Conn.AfterFunc), after the hub's locks are
	// released. It must return quickly. A panic in it is recovered and
	// logged. Default nil: the first drop of each member is logged as a
	// warning and later ones only counted.
	OnDrop func(Drop)

	// Logger receives the hub's log lines. Default slog.Default().
	Logger *slog.Logger
}

// Hub routes publishes to the members whose subscriptions match their
// topic. All its methods are safe for concurrent use.
//
// A Hub lives until Close; after Close, Publish and Subscribe fail with
// ErrClosed while members keep sending what they had queued.
type Hub struct {
	policy Policy
	limits Limits
	onDrop func(Drop)
	log    *slog.Logger
	link   Link

	// mu guards the trie and every member's subs. Publishes read under
	// it; lock order is mu, then a member's mu.
	mu   sync.RWMutex
	trie trie

	// imu serializes what the broker is told, so that it sees each
	// filter's first Subscribe and last Unsubscribe in order.
	imu      sync.Mutex
	interest map[string]int

	closeOnce sync.Once
	closed    atomic.Bool
	members   atomic.Int64
	joined    sync.Map // *Member → struct{}: the members counted in members
	published atomic.Int64
	delivered atomic.Int64
	dropped   atomic.Int64
}

// NewHub returns a hub configured by opts (nil for the defaults). It
// fails only when opts.Broker cannot be opened.
func NewHub(opts *Options) (*Hub, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	h := &Hub{
		policy: o.Policy.or(defaultPolicy),
		limits: o.Limits.or(Limits{MaxBytes: DefaultMaxBytes, MaxMessages: DefaultMaxMessages}),
		onDrop: o.OnDrop,
		log:    o.Logger,
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if o.Broker != nil {
		link, err := o.Broker.Open(func(ctx context.Context, p Publication) {
			if p.Message == nil || CheckTopic(p.Topic) != nil {
				// A broker hands on what it received from other nodes,
				// which are not all colibri's.
				h.log.Debug("topics: ignoring an invalid publication from the broker", slog.String("topic", p.Topic))
				return
			}
			h.deliver(ctx, &p, nil, false)
		})
		if err != nil {
			return nil, fmt.Errorf("topics: open broker: %w", err)
		}
		h.link = link
		h.interest = make(map[string]int)
	}
	return h, nil
}

// PublishOption adjusts one publish.
type PublishOption struct {
	toSelf bool
	key    string
}

// ToSelf makes Member.Publish deliver to the publishing member too, if it
// has a matching subscription. Without it a member never receives its own
// publishes. It has no effect on Hub.Publish, which has no publisher.
func ToSelf() PublishOption { return PublishOption{toSelf: true} }

// Key sets the key that KeepLatest coalesces by; without it the key is
// the topic. The key travels with the message through the broker.
func Key(key string) PublishOption { return PublishOption{key: key} }

// Publish sends msg to every member with a subscription matching topic,
// here and, through the broker, on other nodes. Wildcards are refused in
// topics (ErrInvalidTopic). msg is framed once and its bytes are shared by
// all the members; its payload is copied, so the caller may reuse it.
//
// Publish does not wait for members to read: it queues the message for
// each, applying their policies to those whose queues are full. Only a
// Block policy makes it wait, bounded by its timeout and by ctx. Messages
// that members do not get are reported through Options.OnDrop, not by the
// error, which says whether the message was accepted: it is an invalid
// topic, a message of neither kind (wsconn.ErrInvalidKind), ctx already
// done, ErrClosed, or the broker's failure to take the message (local
// members have it by then).
func (h *Hub) Publish(ctx context.Context, topic string, msg messages.Message, opts ...PublishOption) error {
	return h.publish(ctx, nil, topic, msg, opts)
}

func (h *Hub) publish(ctx context.Context, from *Member, topic string, msg messages.Message, opts []PublishOption) error {
	if err := CheckTopic(topic); err != nil {
		return err
	}
	if msg.Kind != messages.KindText && msg.Kind != messages.KindBinary {
		return fmt.Errorf("topics: publish %q: %w", topic, wsconn.ErrInvalidKind)
	}
	if h.closed.Load() {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return fmt.Errorf("topics: publish %q: %w", topic, context.Cause(ctx))
	}
	var toSelf bool
	pub := Publication{Topic: topic}
	for _, o := range opts {
		toSelf = toSelf || o.toSelf
		if o.key != "" {
			pub.Key = o.key
		}
	}
	pub.Message = wsconn.Prepare(msg)
	h.deliver(ctx, &pub, from, toSelf)
	if h.link != nil {
		if err := h.link.Publish(ctx, pub); err != nil {
			return fmt.Errorf("topics: publish %q through the broker: %w", topic, err)
		}
	}
	return nil
}

// waiter is a member whose Block policy made a publish wait.
type waiter struct {
	m      *Member
	policy Policy
}

// deliver queues pub for every matching member but from (unless toSelf),
// once per member even when several of its filters match: the most
// specific subscription decides the policy.
func (h *Hub) deliver(ctx context.Context, pub *Publication, from *Member, toSelf bool) {
	var nodeBuf [8]*node
	var drops []Drop
	var waiters []waiter
	queued := 0

	h.mu.RLock()
	nodes := h.trie.match(pub.Topic, nodeBuf[:0])
	for i, n := range nodes {
		for _, s := range n.subs {
			if s.m == from && !toSelf {
				continue
			}
			if i > 0 && seenBefore(nodes[:i], s.m) {
				continue
			}
			if pub.Lost > 0 {
				s.m.recordLost(&drops, pub, s.policy)
			}
			switch s.m.offer(pub, s.policy, &drops) {
			case offerQueued:
				queued++
			case offerWait:
				waiters = append(waiters, waiter{s.m, s.policy})
			}
		}
	}
	h.mu.RUnlock()

	if len(waiters) > 0 {
		start := time.Now()
		for _, w := range waiters {
			if w.m.await(ctx, start.Add(w.policy.timeout), pub, w.policy, &drops) {
				queued++
			}
		}
	}
	h.published.Add(1)
	h.delivered.Add(int64(queued))
	if len(drops) > 0 {
		h.report(drops)
	}
}

// report hands drops to OnDrop, or logs each member's first.
func (h *Hub) report(drops []Drop) {
	for _, d := range drops {
		if h.onDrop != nil {
			h.callOnDrop(d)
			continue
		}
		if !d.Member.warned.Swap(true) {
			h.log.Warn("topics: member is dropping messages; later drops are only counted",
				slog.Uint64("conn", d.Member.conn.ID()),
				slog.String("topic", d.Topic), slog.String("reason", d.Reason.String()),
				slog.String("policy", d.Member.policy.String()))
		}
	}
}

// callOnDrop hands d to OnDrop. A panic in it is logged with its stack and
// goes no further: the drops after it are still reported, and a member's
// clean-up, which reports what it held, still ends (Drain waits for it).
func (h *Hub) callOnDrop(d Drop) {
	defer func() {
		if v := recover(); v != nil {
			h.log.Error("topics: OnDrop panicked", slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
		}
	}()
	h.onDrop(d)
}

// Subscribers returns the number of this hub's members that a publish to
// topic would reach (not counting a publisher without ToSelf). Members on
// other nodes are not counted. An invalid topic has none.
func (h *Hub) Subscribers(topic string) int {
	if CheckTopic(topic) != nil {
		return 0
	}
	var nodeBuf [8]*node
	h.mu.RLock()
	defer h.mu.RUnlock()
	nodes := h.trie.match(topic, nodeBuf[:0])
	count := 0
	for i, n := range nodes {
		if i == 0 {
			count += len(n.subs)
			continue
		}
		for _, s := range n.subs {
			if !seenBefore(nodes[:i], s.m) {
				count++
			}
		}
	}
	return count
}

// Stats counts a hub's traffic since it was created.
type Stats struct {
	// Members is the number of members whose connections are open.
	Members int
	// Published counts publishes this hub delivered: its own and those
	// that came through the broker.
	Published int64
	// Delivered counts messages queued to members.
	Delivered int64
	// Dropped counts messages members did not get, for any DropReason:
	// one per message per member, so a message a broker lost on its way
	// to this node (DropLost) counts once for each member it would have
	// reached.
	Dropped int64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Members:   int(h.members.Load()),
		Published: h.published.Load(),
		Delivered: h.delivered.Load(),
		Dropped:   h.dropped.Load(),
	}
}

// Close disconnects the hub from its broker and makes later publishes and
// subscriptions fail with ErrClosed. Members stay joined until their
// connections end and send what they had queued. Close is idempotent and
// returns the broker's error, if any.
func (h *Hub) Close() error {
	var err error
	h.closeOnce.Do(func() {
		h.closed.Store(true)
		if h.link != nil {
			h.imu.Lock()
			err = h.link.Close()
			h.imu.Unlock()
		}
	})
	return err
}

// gainInterest counts a new local subscription to filter and tells the
// broker when it is the first.
func (h *Hub) gainInterest(filter string) error {
	if h.link == nil {
		return nil
	}
	h.imu.Lock()
	defer h.imu.Unlock()
	if h.closed.Load() {
		return ErrClosed
	}
	if h.interest[filter] == 0 {
		if err := h.link.Subscribe(filter); err != nil {
			return err
		}
	}
	h.interest[filter]++
	return nil
}

// loseInterest counts an ended local subscription to filter and tells the
// broker when it was the last.
func (h *Hub) loseInterest(filter string) {
	if h.link == nil {
		return
	}
	h.imu.Lock()
	defer h.imu.Unlock()
	if h.interest[filter]--; h.interest[filter] > 0 {
		return
	}
	delete(h.interest, filter)
	if h.closed.Load() {
		return
	}
	if err := h.unsubscribe(filter); err != nil {
		h.log.Warn("topics: broker unsubscribe failed", slog.String("filter", filter), slog.Any("err", err))
	}
}

// unsubscribe tells the broker that filter lost its last subscription. It
// runs in a member's clean-up too, which must finish whatever the broker
// does (Stats, Drain and the drops it reports depend on it): a panic in
// the broker is an error here.
func (h *Hub) unsubscribe(filter string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("topics: broker Unsubscribe panicked: %v\n%s", v, debug.Stack())
		}
	}()
	return h.link.Unsubscribe(filter)
}
