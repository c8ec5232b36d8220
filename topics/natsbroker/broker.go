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
// Each message carries the publishing hub's node id and a sequence
// number. A node ignores its own messages (Connect also asks the server
// not to echo them) and, when two of its filters overlap, delivers a
// message that arrives through both only once. Messages from one
// publisher arrive in the order it published them. Each node frames a
// message once for all its subscribers.
//
// Delivery between nodes is at most once. When the connection to NATS
// breaks, nats.go reconnects by itself (forever, with the options
// Connect sets) and re-creates the node's subscriptions. Meanwhile:
//
//   - publishes still reach the subscribers on the publishing node;
//   - publishes to other nodes are kept in nats.go's reconnect buffer
//     (Connect sets 8 MiB) and sent after the reconnection; once the
//     buffer is full, Publish returns nats.ErrReconnectBufExceeded;
//   - messages published by anybody while the NATS server is down, or
//     while this node is disconnected from it, do not reach the nodes
//     that are disconnected: the buffered ones reach only the nodes whose
//     subscriptions are back on the server when they arrive. Nothing is
//     replayed later, and WebSocket clients stay connected throughout.
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
	DefaultReconnectBuf     = 8 << 20
	DefaultReconnectWait    = 250 * time.Millisecond
)

// Options configure a Broker. The zero value (or nil) means the
// documented defaults.
type Options struct {
	// Prefix is the first token(s) of every subject, so that several
	// applications can share one NATS account. Default DefaultPrefix
	// ("colibri.topics").
	Prefix string

	// Pending is how many received messages may wait for a node's hub to
	// deliver them. When the hub falls that far behind (a Block policy
	// holding it up, or a burst larger than the hub can fan out), NATS
	// drops further messages for the node: they are counted by
	// Broker.Lost and logged. Default DefaultPending (65,536).
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
// share it; each gets its own node id. The connection belongs to the
// caller, who closes it after the hubs.
type Broker struct {
	nc      *nats.Conn
	prefix  string
	pending int
	subWait time.Duration
	log     *slog.Logger
	lost    atomic.Int64
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
// publishes. opts come after these and may override them.
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

// Lost returns the number of messages NATS dropped because a hub's
// receive queue (Options.Pending) was full. It is sampled once a second.
func (b *Broker) Lost() int64 { return b.lost.Load() }

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
		origins: make(map[uint64]origin),
		stopped: make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
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

	pubMu sync.Mutex // seq and the order of publishes on the wire go together
	seq   uint64

	// Owned by the receiving goroutine.
	origins map[uint64]origin
	dropped int
}

// origin is what a node remembers of another: the last sequence number
// it delivered, to recognise the second copy of a message that matched
// two of its subscriptions.
type origin struct {
	seq  uint64
	seen time.Time
}

var errClosed = errors.New("natsbroker: link closed")

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
	var first error
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && first == nil && !errors.Is(err, nats.ErrConnectionClosed) {
			first = fmt.Errorf("natsbroker: unsubscribe %q: %w", s.Subject, err)
		}
	}
	return first
}

// The envelope of a message on the wire: version, kind, node id,
// sequence number, key length (uvarint), key, payload.
const (
	envVersion = 1
	envHeader  = 2 + 8 + 8
)

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

func (l *link) Publish(_ context.Context, p topics.Publication) error {
	m := p.Message.Message()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	subject := appendSubject((*bp)[:0], l.b.prefix, p.Topic)
	sn := len(subject)
	b := append(subject, envVersion, byte(m.Kind))
	b = binary.BigEndian.AppendUint64(b, l.node)
	b = append(b, make([]byte, 8)...) // sequence, set below
	b = binary.AppendUvarint(b, uint64(len(p.Key)))
	b = append(b, p.Key...)
	b = append(b, m.Payload...)
	*bp = b
	subj, env := string(b[:sn]), b[sn:]

	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	l.seq++
	binary.BigEndian.PutUint64(env[10:18], l.seq)
	return l.b.nc.Publish(subj, env)
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
	l.cancel()
	<-l.stopped
	return nil
}

// run delivers received messages to the hub, one at a time, in the order
// they arrived.
func (l *link) run() {
	defer close(l.stopped)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case msg := <-l.ch:
			l.receive(msg)
		case now := <-tick.C:
			l.checkDropped()
			l.forget(now)
		case <-l.ctx.Done():
			return
		}
	}
}

func (l *link) receive(msg *nats.Msg) {
	topic, ok := topicOf(l.b.prefix, msg.Subject)
	d := msg.Data
	if !ok || len(d) < envHeader || d[0] != envVersion {
		l.b.log.Debug("natsbroker: ignoring a message that is not a colibri publish", slog.String("subject", msg.Subject))
		return
	}
	kind := messages.Kind(d[1])
	node := binary.BigEndian.Uint64(d[2:10])
	seq := binary.BigEndian.Uint64(d[10:18])
	if node == l.node || (kind != messages.KindText && kind != messages.KindBinary) {
		return
	}
	klen, n := binary.Uvarint(d[envHeader:])
	if n <= 0 || uint64(len(d)-envHeader-n) < klen {
		return
	}
	key := string(d[envHeader+n : envHeader+n+int(klen)])
	payload := d[envHeader+n+int(klen):]

	// NATS sends every copy of a publisher's message before any copy of
	// its next one, so a sequence number not above the last one seen is
	// a second copy through an overlapping subscription.
	o, known := l.origins[node]
	if known && seq <= o.seq {
		return
	}
	l.origins[node] = origin{seq: seq, seen: time.Now()}

	l.deliver(l.ctx, topics.Publication{
		Topic:   topic,
		Message: wsconn.Prepare(messages.Message{Kind: kind, Payload: payload}),
		Key:     key,
	})
}

// checkDropped reports messages NATS dropped because ch was full.
func (l *link) checkDropped() {
	l.mu.Lock()
	total := 0
	for _, subs := range l.subs {
		for _, s := range subs {
			if n, err := s.Dropped(); err == nil {
				total += n
			}
		}
	}
	l.mu.Unlock()
	if total > l.dropped {
		l.b.lost.Add(int64(total - l.dropped))
		l.b.log.Warn("natsbroker: NATS dropped messages for this node: the hub fell behind",
			slog.Int("dropped", total-l.dropped), slog.Int("pending_limit", cap(l.ch)))
	}
	l.dropped = total
}

// forgetAfter is how long a node remembers another that published
// nothing. Forgetting is harmless: copies of one message arrive together.
const forgetAfter = 10 * time.Minute

func (l *link) forget(now time.Time) {
	for id, o := range l.origins {
		if now.Sub(o.seen) > forgetAfter {
			delete(l.origins, id)
		}
	}
}
