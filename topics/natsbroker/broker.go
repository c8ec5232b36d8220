// Package natsbroker carries the publishes of colibri hubs between nodes
// over NATS (https://nats.io), so that a message published on one node
// reaches the subscribers on all of them.
//
// # Use
//
// Each node connects to NATS and gives its hub a Broker:
//
//	nc, err := natsbroker.Connect(url)
//	...
//	hub, err := topics.NewHub(&topics.Options{Broker: natsbroker.New(nc, nil)})
//
// # Subjects
//
// A topic travels on the subject Options.Prefix + "." + its levels, one
// token per level: "room/lobby" on "colibri.topics.room.lobby". A level
// that is not a plain NATS token (empty, or holding '.', '*', '>',
// spaces, non-ASCII) is escaped as "~" and its bytes in base64. A node
// subscribes to NATS when it gains its first local subscriber to a filter,
// with '+' as '*' and '#' as '>' (plus the parent subject: "a/#" matches
// "a"), and unsubscribes when the last one leaves. Only the nodes that
// have subscribers for a topic receive its messages.
//
// # Delivery
//
// Each message carries the publishing hub's node id, a sequence number,
// and its number among that hub's messages to its topic. A node ignores
// its own messages (Connect also asks the server not to echo them) and,
// when two of its filters overlap, delivers a message that arrives
// through both only once. Messages from one publisher arrive in the order
// it published them. Each node frames a message once for all its
// subscribers.
//
// Hubs sharing a Broker get each other's publishes from the Broker
// itself, in the publisher's goroutine, as from topics.InProcess: with
// NoEcho the server does not send them back, so that a publish reaches
// each hub once, in its publisher's order.
//
// Delivery between nodes is at most once. When the connection to NATS
// breaks, nats.go reconnects by itself (forever, with the options
// Connect sets) and re-creates the node's subscriptions. Meanwhile:
//
//   - publishes still reach the subscribers on the publishing node;
//   - publishes to other nodes are kept in nats.go's reconnect buffer
//     (Connect sets 8 MiB) and sent after the reconnection; once the
//     buffer is full, Publish returns an error wrapping ErrNotSent and
//     nats.ErrReconnectBufExceeded;
//   - messages published by anybody while the NATS server is down, or
//     while this node is disconnected from it, do not reach the nodes
//     that are disconnected: the buffered ones reach only the nodes whose
//     subscriptions are back on the server when they arrive. Nothing is
//     replayed later, and WebSocket clients stay connected throughout.
//
// # Losses
//
// What is lost is counted, on the side that can know it (Broker.Losses):
//
//   - the publishing node counts the publishes NATS refused (the error
//     wraps ErrNotSent) and those discarded from the reconnect buffer;
//   - the receiving node counts the messages missing from each
//     publisher's numbering of its messages to a topic, when the next
//     one arrives, and its hub reports them for the members that message
//     reaches as drops with topics.DropLost: in Hub.Stats().Dropped,
//     Member.Dropped, Options.OnDrop and the observe package's
//     colibri.topics.drops metric with reason "lost".
//
// A message is counted once, on one side: the publishing node does not
// number a message NATS refused. The counts are exact, with two blind
// spots: a gap is seen only when the publisher's next message to the
// topic arrives (the last messages before a publisher stops are not
// counted on the receiving side), and a gap that spans a change of the
// receiving node's subscriptions is not counted (it cannot tell a lost
// message from one it was not subscribed to).
//
// Applications that must not lose messages across an outage number them
// and let clients fetch what they missed.
package natsbroker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// Defaults used where Options leave a field zero.
const (
	DefaultPrefix           = "colibri.topics"
	DefaultPending          = 64 << 10
	DefaultSubscribeTimeout = 2 * time.Second
)

// What Connect sets on the NATS connection: the bytes of publishes held
// while reconnecting, and the wait between reconnection attempts.
const (
	DefaultReconnectBuf  = 8 << 20
	DefaultReconnectWait = 250 * time.Millisecond
)

// Options configure a Broker. The zero value (or nil) means the
// documented defaults.
type Options struct {
	// Prefix is the first token(s) of every subject, so that several
	// applications can share one NATS account. No application's prefix
	// may begin with another's followed by a dot ("app" and "app.chat"):
	// the first would receive the second's topics. Default DefaultPrefix
	// ("colibri.topics").
	Prefix string

	// Pending is how many received messages may wait for a node's hub to
	// deliver them. When the hub falls that far behind (a Block policy
	// holding it up, or a burst larger than the hub can fan out), NATS
	// drops further messages for the node: they are counted (Losses.Behind
	// and Missing, and DropLost in the hub) and logged. Default
	// DefaultPending (65,536).
	Pending int

	// SubscribeTimeout bounds how long Subscribe waits for the NATS server
	// to confirm a new subscription, so that publishes made on other nodes
	// after Subscribe returns reach the subscriber. While disconnected it
	// does not wait: the subscription takes effect on reconnection.
	// Default DefaultSubscribeTimeout (2 s).
	SubscribeTimeout time.Duration

	// Logger receives the broker's log lines. Default slog.Default().
	Logger *slog.Logger
}

// Broker is a topics.Broker over one NATS connection. Several hubs may
// share it; each gets its own node id, and the Broker hands each of them
// the publishes of the others that match its subscriptions, without a
// trip through NATS. The connection belongs to the caller, who closes it
// after the hubs.
type Broker struct {
	nc      *nats.Conn
	prefix  string
	pending int
	subWait time.Duration
	log     *slog.Logger

	notSent   atomic.Int64
	discarded atomic.Int64
	missing   atomic.Int64
	behind    atomic.Int64

	// The reconnect buffer is the connection's, shared by every hub on
	// it: buffered counts the publishes nats.go took into it since its
	// reconnection number bufEpoch, sent when it reconnects, discarded if
	// the connection closes first.
	bufMu    sync.Mutex
	buffered int64
	bufEpoch uint64
	hubs     int // links open

	// The links open, which deliver each other's publishes (see
	// link.toSiblings), and their filters.
	linkMu sync.RWMutex
	links  []*link
}

// New returns a Broker over nc. nc should reconnect forever: New logs a
// warning when nc.Opts.MaxReconnect is not negative. Connect makes a
// connection with the right options.
func New(nc *nats.Conn, opts *Options) *Broker {
	var o Options
	if opts != nil {
		o = *opts
	}
	b := &Broker{nc: nc, prefix: o.Prefix, pending: o.Pending, subWait: o.SubscribeTimeout, log: o.Logger}
	if b.prefix == "" {
		b.prefix = DefaultPrefix
	}
	if b.pending <= 0 {
		b.pending = DefaultPending
	}
	if b.subWait <= 0 {
		b.subWait = DefaultSubscribeTimeout
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if nc.Opts.MaxReconnect >= 0 {
		b.log.Warn("natsbroker: the NATS connection stops reconnecting after a number of attempts; topics then stop crossing nodes",
			slog.Int("max_reconnects", nc.Opts.MaxReconnect))
	}
	return b
}

// Connect connects to the NATS server(s) at url with the options a
// Broker wants: reconnect forever (MaxReconnects -1), every 250 ms plus
// jitter, with an 8 MiB reconnect buffer, and no echo of the node's own
// publishes (hubs sharing the Broker get those from it). opts come after
// these and may override them.
func Connect(url string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{
		nats.Name("colibri topics"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(DefaultReconnectWait),
		nats.ReconnectBufSize(DefaultReconnectBuf),
		nats.NoEcho(),
	}
	return nats.Connect(url, append(base, opts...)...)
}

// Lost returns the number of messages lost between this broker's hubs and
// other nodes, for any reason: Losses().Total().
func (b *Broker) Lost() int64 { return b.Losses().Total() }

// Losses returns the messages lost between this broker's hubs and other
// nodes since New, by cause.
func (b *Broker) Losses() Losses {
	return Losses{
		NotSent:   b.notSent.Load(),
		Discarded: b.discarded.Load(),
		Missing:   b.missing.Load(),
		Behind:    b.behind.Load(),
	}
}

// Open connects a hub; it fails when the NATS connection is closed.
func (b *Broker) Open(deliver func(context.Context, topics.Publication)) (topics.Link, error) {
	if b.nc.IsClosed() {
		return nil, nats.ErrConnectionClosed
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	l := &link{
		b:       b,
		node:    binary.BigEndian.Uint64(id[:]),
		deliver: deliver,
		ch:      make(chan *nats.Msg, b.pending),
		subs:    make(map[string][]*nats.Subscription),
		tracker: newTracker(),
		status:  b.nc.StatusChanged(nats.CLOSED),
		stopped: make(chan struct{}),
		num:     numbering{topics: make(map[string]*topicCount), swept: time.Now()},
		filters: make(map[string]struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	b.bufMu.Lock()
	b.hubs++
	b.bufMu.Unlock()
	b.linkMu.Lock()
	b.links = append(b.links, l)
	b.linkMu.Unlock()
	go l.run()
	return l, nil
}

// link is one hub's connection to NATS.
type link struct {
	b       *Broker
	node    uint64
	deliver func(context.Context, topics.Publication)
	ch      chan *nats.Msg // every subscription of the link feeds it, in wire order
	ctx     context.Context
	cancel  context.CancelFunc
	stopped chan struct{}

	mu     sync.Mutex
	subs   map[string][]*nats.Subscription
	closed bool
	// retired is what NATS had dropped on subscriptions since ended, so
	// that their drops still count (checkDropped).
	retired int

	pubMu sync.Mutex // seq and the order of publishes on the wire go together
	seq   uint64
	num   numbering

	status chan nats.Status // the connection's CLOSED

	filters map[string]struct{} // guarded by b.linkMu
	dmu     sync.Mutex          // deliveries take turns: from NATS and from siblings

	// Owned by the receiving goroutine.
	tracker   *tracker
	dropped   int
	missing   int64 // reported in the last log line
	lastSweep time.Time
}

var errClosed = fmt.Errorf("natsbroker: link closed: %w", topics.ErrClosed)

func (l *link) Subscribe(filter string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errClosed
	}
	var subs []*nats.Subscription
	for _, subj := range filterSubjects(l.b.prefix, filter) {
		sub, err := l.b.nc.ChanSubscribe(subj, l.ch)
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return fmt.Errorf("natsbroker: subscribe %q: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	l.subs[filter] = subs
	l.b.linkMu.Lock()
	l.filters[filter] = struct{}{}
	l.b.linkMu.Unlock()
	if l.b.nc.IsConnected() {
		if err := l.b.nc.FlushTimeout(l.b.subWait); err != nil {
			l.b.log.Debug("natsbroker: subscription not confirmed yet", slog.String("filter", filter), slog.Any("err", err))
		}
	}
	return nil
}

func (l *link) Unsubscribe(filter string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	subs := l.subs[filter]
	delete(l.subs, filter)
	l.b.linkMu.Lock()
	delete(l.filters, filter)
	l.b.linkMu.Unlock()
	var first error
	for _, s := range subs {
		if n, err := s.Dropped(); err == nil {
			l.retired += n
		}
		if err := s.Unsubscribe(); err != nil && first == nil && !errors.Is(err, nats.ErrConnectionClosed) {
			first = fmt.Errorf("natsbroker: unsubscribe %q: %w", s.Subject, err)
		}
	}
	return first
}

// The envelope of a message on the wire: version, kind, node id,
// sequence number, number among the node's messages to the topic, key
// length (uvarint), key, payload. Version 1 had no number per topic; it
// is still read.
const (
	envVersion  = 2
	envHeader   = 2 + 8 + 8 + 8
	envV1       = 1
	envV1Header = 2 + 8 + 8
)

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

func (l *link) Publish(ctx context.Context, p topics.Publication) error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return errClosed
	}
	err := l.send(p)
	l.toSiblings(ctx, p)
	return err
}

// send publishes p on NATS, for the other nodes.
func (l *link) send(p topics.Publication) error {
	m := p.Message.Message()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	subject := appendSubject((*bp)[:0], l.b.prefix, p.Topic)
	sn := len(subject)
	b := append(subject, envVersion, byte(m.Kind))
	b = binary.BigEndian.AppendUint64(b, l.node)
	b = append(b, make([]byte, 16)...) // sequence numbers, set below
	b = binary.AppendUvarint(b, uint64(len(p.Key)))
	b = append(b, p.Key...)
	b = append(b, m.Payload...)
	*bp = b
	subj, env := string(b[:sn]), b[sn:]

	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	l.seq++
	binary.BigEndian.PutUint64(env[10:18], l.seq)
	binary.BigEndian.PutUint64(env[18:26], l.num.next(p.Topic))
	if err := l.b.nc.Publish(subj, env); err != nil {
		// Nothing left: take the numbers back, so that receivers see no
		// gap, and count the message here.
		l.seq--
		l.num.undo(p.Topic)
		l.b.notSent.Add(1)
		return fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	if !l.b.nc.IsConnected() {
		l.b.held()
	}
	return nil
}

// toSiblings hands p to the other hubs on this Broker whose filters match
// it, one after the other, in the publisher's goroutine, as
// topics.InProcess does: the server does not echo a connection's
// publishes back to it (Connect sets NoEcho). Echo would need no code
// here, but every publish would then also come back to its own node
// whenever that node has subscribers to the topic (the common case: a
// chat member is in the room it writes to), only to be dropped by node
// id: with two nodes, twice the traffic from NATS, and echoes taking
// room in the Pending queue, where NATS dropping them would count in
// Losses.Behind though nothing was lost. This way a node with one hub
// per Broker pays a read lock per publish, and siblings get the framed
// message at once, with nothing to lose. With a connection that echoes,
// they get it from NATS instead.
//
// A sibling's delivery ends with the publisher's context too, which bounds
// a Block wait there as it does on the publisher's own hub.
func (l *link) toSiblings(ctx context.Context, p topics.Publication) {
	if !l.b.nc.Opts.NoEcho {
		return
	}
	var buf [4]*link
	targets := buf[:0]
	l.b.linkMu.RLock()
	if len(l.b.links) > 1 {
		for _, o := range l.b.links {
			if o != l && o.matches(p.Topic) {
				targets = append(targets, o)
			}
		}
	}
	l.b.linkMu.RUnlock()
	p.Lost = 0
	for _, o := range targets {
		o.dmu.Lock()
		if o.ctx.Err() == nil {
			dctx, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(o.ctx, cancel)
			o.deliver(dctx, p)
			stop()
			cancel()
		}
		o.dmu.Unlock()
	}
}

// hasFilterFor is matches for a caller that does not hold b.linkMu.
func (l *link) hasFilterFor(topic string) bool {
	l.b.linkMu.Lock()
	defer l.b.linkMu.Unlock()
	return l.matches(topic)
}

// matches reports whether one of l's filters matches topic; the caller
// holds b.linkMu.
func (l *link) matches(topic string) bool {
	for f := range l.filters {
		if topics.Match(f, topic) {
			return true
		}
	}
	return false
}

// held counts a publish nats.go took while disconnected, into its
// reconnect buffer.
func (b *Broker) held() {
	if st := b.nc.Status(); st != nats.RECONNECTING && st != nats.DISCONNECTED {
		return
	}
	epoch := b.nc.Stats().Reconnects
	b.bufMu.Lock()
	defer b.bufMu.Unlock()
	if epoch != b.bufEpoch {
		b.bufEpoch, b.buffered = epoch, 0
	}
	b.buffered++
}

// discardPending counts the publishes still in the reconnect buffer as
// discarded: the connection closed while disconnected, or the last hub
// did. Every hub's link sees the connection close; the first counts.
func (b *Broker) discardPending() {
	b.bufMu.Lock()
	defer b.bufMu.Unlock()
	if b.buffered > 0 && b.nc.Stats().Reconnects == b.bufEpoch && !b.nc.IsConnected() {
		b.discarded.Add(b.buffered)
		b.log.Warn("natsbroker: publishes held during a NATS outage were discarded",
			slog.Int64("discarded", b.buffered))
	}
	b.buffered = 0
}

func (l *link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for _, subs := range l.subs {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	l.subs = nil
	l.mu.Unlock()
	l.b.linkMu.Lock()
	l.b.links = slices.DeleteFunc(l.b.links, func(o *link) bool { return o == l })
	l.b.linkMu.Unlock()
	l.cancel()
	<-l.stopped
	l.waitDeliveries()
	l.b.nc.RemoveStatusListener(l.status)
	l.b.bufMu.Lock()
	l.b.hubs--
	last := l.b.hubs == 0
	l.b.bufMu.Unlock()
	if last {
		// The last hub gone, the node closes the connection next (see
		// Broker): nobody would see it close, and what is still in the
		// reconnect buffer will not be sent. While other hubs remain,
		// the buffer is theirs to send or to see discarded.
		l.b.discardPending()
	}
	return nil
}

// waitDeliveries waits for a sibling's delivery in progress; later ones
// see the link's context ended.
func (l *link) waitDeliveries() {
	l.dmu.Lock()
	defer l.dmu.Unlock()
}

// run delivers received messages to the hub, one at a time, in the order
// they arrived.
func (l *link) run() {
	defer close(l.stopped)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	l.lastSweep = time.Now()
	for {
		select {
		case msg := <-l.ch:
			l.receive(msg)
		case st := <-l.status:
			if st == nats.CLOSED {
				l.b.discardPending()
			}
		case now := <-tick.C:
			l.checkDropped()
			l.reportMissing()
			if now.Sub(l.lastSweep) >= sweepEvery {
				l.tracker.forget(now)
				l.pubMu.Lock()
				l.num.sweep(now)
				l.pubMu.Unlock()
				l.lastSweep = now
			}
		case <-l.ctx.Done():
			return
		}
	}
}

func (l *link) receive(msg *nats.Msg) {
	topic, ok := topicOf(l.b.prefix, msg.Subject)
	if ok && topics.CheckTopic(topic) != nil {
		ok = false // another client's subject: no colibri node sends it
	}
	d := msg.Data
	header := 0
	switch {
	case len(d) >= envHeader && d[0] == envVersion:
		header = envHeader
	case len(d) >= envV1Header && d[0] == envV1:
		header = envV1Header
	}
	if !ok || header == 0 {
		l.b.log.Debug("natsbroker: ignoring a message that is not a colibri publish", slog.String("subject", msg.Subject))
		return
	}
	kind := messages.Kind(d[1])
	node := binary.BigEndian.Uint64(d[2:10])
	seq := binary.BigEndian.Uint64(d[10:18])
	var tseq uint64
	if header == envHeader {
		tseq = binary.BigEndian.Uint64(d[18:26])
	}
	if node == l.node || (kind != messages.KindText && kind != messages.KindBinary) {
		return
	}
	klen, n := binary.Uvarint(d[header:])
	if n <= 0 || uint64(len(d)-header-n) < klen {
		return
	}
	key := string(d[header+n : header+n+int(klen)])
	payload := d[header+n+int(klen):]

	deliver, lost := l.tracker.accept(node, seq, topic, tseq, msg.Sub, time.Now())
	if !deliver {
		return
	}
	if strings.HasPrefix(topic, "$") && !l.hasFilterFor(topic) {
		// NATS wildcards match a '$' level; a filter's '+' and '#' do not
		// (topics.Match), so such a topic reached us through one of them:
		// no member takes it, and no loss before it counts. It is
		// numbered all the same (accept above), so that the next one,
		// once a member subscribes, does not count it as a gap.
		return
	}
	if lost > 0 {
		l.b.missing.Add(int64(lost))
	}
	l.dmu.Lock()
	defer l.dmu.Unlock()
	l.deliver(l.ctx, topics.Publication{
		Topic:   topic,
		Message: wsconn.Prepare(messages.Message{Kind: kind, Payload: payload}),
		Key:     key,
		Lost:    int(min(lost, math.MaxInt32)),
	})
}

// reportMissing logs, at most once a second, the messages of other nodes
// found missing since the last report.
func (l *link) reportMissing() {
	total := l.b.missing.Load()
	if total > l.missing {
		l.b.log.Warn("natsbroker: messages from other nodes were lost on the way (a NATS outage, or this node fell behind)",
			slog.Int64("lost", total-l.missing), slog.Int64("lost_total", total))
	}
	l.missing = total
}

// checkDropped reports messages NATS dropped because ch was full.
func (l *link) checkDropped() {
	l.mu.Lock()
	total := l.retired
	for _, subs := range l.subs {
		for _, s := range subs {
			if n, err := s.Dropped(); err == nil {
				total += n
			}
		}
	}
	l.mu.Unlock()
	if total > l.dropped {
		// Logged first, so that whoever sees the count sees the line.
		l.b.log.Warn("natsbroker: NATS dropped messages for this node: the hub fell behind",
			slog.Int("dropped", total-l.dropped), slog.Int("pending_limit", cap(l.ch)))
		l.b.behind.Add(int64(total - l.dropped))
	}
	l.dropped = total
}
