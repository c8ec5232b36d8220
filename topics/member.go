package topics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// ErrLeft is returned by Subscribe, SubscribeWith and Drain of a Member
// whose connection has ended: its subscriptions are gone and its queue was
// discarded. (Unsubscribe has nothing left to do and returns nil; Publish
// still reaches the hub's other members.)
var ErrLeft = errors.New("topics: member has left")

// MemberOptions configure one member; zero fields take the hub's values.
type MemberOptions struct {
	// Policy applies to this member's subscriptions that set none.
	// Default: the hub's Options.Policy.
	Policy Policy
	// Limits bound this member's queue. Default: the hub's Options.Limits.
	Limits Limits
}

// Member is one connection's place in a hub: its subscriptions, and one
// bounded queue of messages on their way to the peer, which a sender task
// in the connection's group writes with Outbound.WritePreparedBatch. The
// task runs only while the queue has messages, so an idle member costs no
// goroutine. A slow peer fills only its own queue; what happens then is
// its Policy.
//
// Its methods are safe for concurrent use. A Member lives as long as its
// connection: when the connection's context ends, the member removes every
// subscription, discards what is still queued or was being written but
// did not go out (reported with DropLeft) and later calls to Subscribe
// and Drain fail with ErrLeft.
//
// Control frames (PING, PONG, CLOSE) never wait behind the queue: wsconn
// sends them on their own path, between messages.
type Member struct {
	hub      *Hub
	conn     *wsconn.Conn
	out      *wsconn.Outbound
	policy   Policy
	maxBytes int
	maxMsgs  int

	subs map[string]*subscription // guarded by hub.mu

	mu        sync.Mutex
	q         queue
	inflight  []entry       // the messages the sender is writing, or failed to
	writing   bool          // the sender is writing inflight: it alone knows what went out
	landing   chan struct{} // made by leave while writing, closed when the write returns
	bytes     int           // queued and in flight
	count     int           // queued and in flight
	keys      map[string]uint64
	sending   bool                        // a sender task runs
	runFn     func(context.Context) error // m.run, made once
	left      bool                        // the connection ended
	settled   bool                        // left, and its drops reported: Drain returns ErrLeft
	closeCode frames.CloseCode            // set by Disconnect: the sender closes with it
	space     chan struct{}               // closed when the sender frees room, for Block
	drain     *drainWait

	dropped atomic.Int64
	warned  atomic.Bool
}

type drainWait struct {
	done chan struct{}
	err  error
}

// Join makes c a member of h, until c's context ends. Its sender task
// runs in c's group (Conn.Go) whenever messages are queued. opts may be
// nil. Call Join once per connection; each call makes a new member with
// its own queue.
func (h *Hub) Join(c *wsconn.Conn, opts *MemberOptions) *Member {
	var o MemberOptions
	if opts != nil {
		o = *opts
	}
	lim := o.Limits.or(h.limits)
	m := &Member{
		hub:      h,
		conn:     c,
		out:      c.Outbound(),
		policy:   o.Policy.or(h.policy),
		maxBytes: lim.MaxBytes,
		maxMsgs:  lim.MaxMessages,
	}
	m.runFn = m.run
	h.members.Add(1)
	h.joined.Store(m, struct{}{})
	// Leaving is bound to the connection: its drops are reported before
	// the connection is over.
	c.AfterFunc(m.leave)
	return m
}

// Conn returns the member's connection.
func (m *Member) Conn() *wsconn.Conn { return m.conn }

// Subscribe subscribes the member to filter, under the member's policy.
// Subscribing again to the same filter changes nothing but the policy.
// When a member has several subscriptions matching a topic, a publish
// reaches it once, under the policy of the most specific one: filters
// are compared level by level from the left, and a literal level is more
// specific than '+', which is more specific than '#'.
func (m *Member) Subscribe(filter string) error {
	return m.SubscribeWith(filter, Policy{})
}

// SubscribeWith is Subscribe with a policy for this subscription only;
// the zero Policy means the member's.
func (m *Member) SubscribeWith(filter string, p Policy) error {
	if err := checkFilter(filter); err != nil {
		return err
	}
	h := m.hub
	if h.closed.Load() {
		return ErrClosed
	}
	s := &subscription{m: m, filter: filter, policy: p.or(m.policy)}
	h.mu.Lock()
	if m.hasLeft() {
		h.mu.Unlock()
		return ErrLeft
	}
	if old := m.subs[filter]; old != nil {
		old.policy = s.policy
		h.mu.Unlock()
		return nil
	}
	h.mu.Unlock()

	// The broker hears of the filter before anybody is subscribed to it
	// locally, so that remote publishes flow as soon as Subscribe returns.
	if err := h.gainInterest(filter); err != nil {
		return fmt.Errorf("topics: subscribe %q: %w", filter, err)
	}
	h.mu.Lock()
	if left := m.hasLeft(); left || m.subs[filter] != nil {
		// The member left, or a concurrent call subscribed it first.
		if !left {
			m.subs[filter].policy = s.policy
		}
		h.mu.Unlock()
		h.loseInterest(filter)
		if left {
			return ErrLeft
		}
		return nil
	}
	if m.subs == nil {
		m.subs = make(map[string]*subscription)
	}
	m.subs[filter] = s
	h.trie.add(s)
	h.mu.Unlock()
	return nil
}

// Unsubscribe ends the member's subscription to filter, if it has one;
// messages already queued are still sent.
func (m *Member) Unsubscribe(filter string) error {
	if err := checkFilter(filter); err != nil {
		return err
	}
	h := m.hub
	h.mu.Lock()
	if m.subs[filter] == nil {
		h.mu.Unlock()
		return nil
	}
	delete(m.subs, filter)
	h.trie.remove(filter, m)
	h.mu.Unlock()
	h.loseInterest(filter)
	return nil
}

// Subscriptions returns the member's filters, sorted.
func (m *Member) Subscriptions() []string {
	m.hub.mu.RLock()
	defer m.hub.mu.RUnlock()
	fs := make([]string, 0, len(m.subs))
	for f := range m.subs {
		fs = append(fs, f)
	}
	slices.Sort(fs)
	return fs
}

// Publish is Hub.Publish from this member: the member itself does not
// receive the message unless opts include ToSelf.
func (m *Member) Publish(ctx context.Context, topic string, msg messages.Message, opts ...PublishOption) error {
	return m.hub.publish(ctx, m, topic, msg, opts)
}

// Buffered returns what the member holds: the bytes (on the wire) and the
// number of messages queued or being written.
func (m *Member) Buffered() (bytes, msgs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes, m.count
}

// Dropped returns the number of messages the member did not get.
func (m *Member) Dropped() int64 { return m.dropped.Load() }

// Drain waits until the member's queue is empty and its last message has
// been written to the connection, the way a Bun handler awaits its drain
// event; it returns at once when there is nothing to wait for. It returns
// ctx's cause when ctx ends first, and ErrLeft when the connection ends
// first (the queue is then discarded, not drained, and the discarded
// messages have been reported as drops when Drain returns).
func (m *Member) Drain(ctx context.Context) error {
	m.mu.Lock()
	if m.settled {
		m.mu.Unlock()
		return ErrLeft
	}
	if m.count == 0 && !m.left {
		m.mu.Unlock()
		return nil
	}
	if m.drain == nil {
		m.drain = &drainWait{done: make(chan struct{})}
	}
	w := m.drain
	m.mu.Unlock()
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (m *Member) hasLeft() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.left
}

// ---- the queue ----

type offerResult uint8

const (
	offerSkipped offerResult = iota // the member has left
	offerQueued
	offerDropped
	offerWait // Block: the publisher should wait for room
)

// offer queues pub for m under policy p, or applies p when it does not
// fit. Drops are appended to drops.
func (m *Member) offer(pub *Publication, p Policy, drops *[]Drop) offerResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.offerLocked(pub, p, drops)
}

func (m *Member) offerLocked(pub *Publication, p Policy, drops *[]Drop) offerResult {
	if m.left {
		return offerSkipped
	}
	size := pub.Message.Len()
	switch {
	case m.closeCode != 0:
		m.record(drops, pub.Topic, size, DropDisconnected, p)
		return offerDropped
	case size > m.maxBytes:
		m.record(drops, pub.Topic, size, DropTooLarge, p)
		return offerDropped
	}
	var key string
	if p.mode == modeKeepLatest {
		key = pub.Key
		if key == "" {
			key = pub.Topic
		}
		if pos, ok := m.keys[key]; ok {
			return m.replace(pos, key, pub, size, p, drops)
		}
	}
	if !m.fits(size) {
		switch p.mode {
		case modeDropOldest, modeKeepLatest:
			if len(m.inflight)+1 > m.maxMsgs || m.inflightBytes()+size > m.maxBytes {
				// The messages being written leave no room even with the
				// queue emptied: refuse rather than evict for nothing.
				m.record(drops, pub.Topic, size, DropRefused, p)
				return offerDropped
			}
			for !m.fits(size) && m.q.n > 0 {
				m.evict(drops, p)
			}
		case modeDropNewest:
			m.record(drops, pub.Topic, size, DropRefused, p)
			return offerDropped
		case modeBlock:
			return offerWait
		case modeDisconnect:
			m.closeCode = p.code
			m.record(drops, pub.Topic, size, DropDisconnected, p)
			m.wakeSender()
			return offerDropped
		}
	}
	pos := m.q.push(entry{p: pub.Message, topic: pub.Topic, key: key}, m.maxMsgs)
	if key != "" {
		if m.keys == nil {
			m.keys = make(map[string]uint64)
		}
		m.keys[key] = pos
	}
	m.bytes += size
	m.count++
	m.wakeSender()
	return offerQueued
}

// replace puts pub, of size bytes, in place of the queued message with
// its key, at pos. When the swap would take the member past MaxBytes,
// the oldest other messages make room: the newest value of a key is the
// one KeepLatest exists to deliver. When the messages being written leave
// no room even so, pub is refused and the queued value stays.
func (m *Member) replace(pos uint64, key string, pub *Publication, size int, p Policy, drops *[]Drop) offerResult {
	old := m.q.at(pos).p.Len()
	if m.inflightBytes()+size > m.maxBytes {
		m.record(drops, pub.Topic, size, DropRefused, p)
		return offerDropped
	}
	for m.bytes-old+size > m.maxBytes && m.q.base < pos {
		m.evict(drops, p) // older than the replaced one
	}
	for m.bytes-old+size > m.maxBytes && m.q.n > 1 {
		m.evictSecond(drops, p) // newer: the replaced one is the oldest now
	}
	e := m.q.at(m.keys[key])
	m.record(drops, e.topic, old, DropReplaced, p)
	e.p, e.topic = pub.Message, pub.Topic
	m.bytes += size - old
	return offerQueued
}

// inflightBytes returns the bytes of the messages in flight, which no
// policy can take back.
func (m *Member) inflightBytes() int {
	b := 0
	for _, e := range m.inflight {
		b += e.p.Len()
	}
	return b
}

func (m *Member) fits(size int) bool {
	return m.count < m.maxMsgs && m.bytes+size <= m.maxBytes
}

// wakeSender starts a sender task unless one runs. The task ends when
// the queue is empty, so that an idle member costs no goroutine.
func (m *Member) wakeSender() {
	if !m.sending && m.conn != nil { // the queue's own tests have no connection
		// Go refuses once the connection is ending; the member leaves the
		// hub then, and what it holds is reported as dropped.
		m.sending = m.conn.Go(m.runFn) == nil
	}
}

// evict drops the oldest queued message.
func (m *Member) evict(drops *[]Drop, p Policy) {
	m.discard(drops, m.pop(), DropEvicted, p)
}

// evictSecond drops the second oldest queued message; the oldest moves
// into its place, and its key with it.
func (m *Member) evictSecond(drops *[]Drop, p Policy) {
	first := m.q.buf[m.q.head].key
	e, pos := m.q.dropSecond()
	if e.key != "" && m.keys[e.key] == pos {
		delete(m.keys, e.key)
	}
	if first != "" {
		m.keys[first] = pos
	}
	m.discard(drops, e, DropEvicted, p)
}

// discard drops e, which m held, for reason r.
func (m *Member) discard(drops *[]Drop, e entry, r DropReason, p Policy) {
	size := e.p.Len()
	m.bytes -= size
	m.count--
	m.record(drops, e.topic, size, r, p)
}

// pop takes the oldest message off the queue and forgets its key.
func (m *Member) pop() entry {
	e, pos := m.q.pop()
	if e.key != "" && m.keys[e.key] == pos {
		delete(m.keys, e.key)
	}
	return e
}

// record counts one drop and keeps it for the report.
func (m *Member) record(drops *[]Drop, topic string, size int, r DropReason, p Policy) {
	m.dropped.Add(1)
	m.hub.dropped.Add(1)
	*drops = append(*drops, Drop{Member: m, Topic: topic, Bytes: size, Count: 1, Reason: r, Policy: p})
}

// recordLost counts the n messages a broker lost before pub, which m
// would have been offered under p, and keeps them for the report.
func (m *Member) recordLost(drops *[]Drop, pub *Publication, p Policy) {
	m.dropped.Add(int64(pub.Lost))
	m.hub.dropped.Add(int64(pub.Lost))
	*drops = append(*drops, Drop{Member: m, Topic: pub.Topic, Count: pub.Lost, Reason: DropLost, Policy: p})
}

// await waits until pub fits in m's queue under p, a Block policy, until
// deadline or until ctx ends. It reports whether pub was queued.
func (m *Member) await(ctx context.Context, deadline time.Time, pub *Publication, p Policy, drops *[]Drop) bool {
	var timer *time.Timer
	for {
		m.mu.Lock()
		switch m.offerLocked(pub, p, drops) {
		case offerQueued:
			m.mu.Unlock()
			return true
		case offerSkipped:
			// The member left while the publisher waited: pub never
			// reaches it, and leave did not see it.
			m.record(drops, pub.Topic, pub.Message.Len(), DropLeft, p)
			m.mu.Unlock()
			return false
		case offerDropped:
			m.mu.Unlock()
			return false
		}
		if m.space == nil {
			m.space = make(chan struct{})
		}
		space := m.space
		m.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
			defer timer.Stop()
		}
		select {
		case <-space:
		case <-timer.C:
			m.record(drops, pub.Topic, pub.Message.Len(), DropTimedOut, p)
			return false
		case <-ctx.Done():
			m.record(drops, pub.Topic, pub.Message.Len(), DropTimedOut, p)
			return false
		}
	}
}

// ---- the sender ----

// run is the member's sender task: it writes queued messages in order
// until the queue is empty or the connection ends.
func (m *Member) run(ctx context.Context) error {
	// A sender with a backlog writes up to sendBatch messages with one
	// system call.
	var flight [sendBatch]entry
	var batch [sendBatch]*wsconn.Prepared
	sent := 0
	for {
		m.mu.Lock()
		if m.writing {
			m.landed(sent)
		}
		if ctx.Err() != nil || m.left {
			m.sending = false
			m.mu.Unlock()
			return nil
		}
		if code := m.closeCode; code != 0 {
			m.mu.Unlock()
			return &wsconn.CloseError{Code: code, Reason: "slow consumer"}
		}
		if m.q.n == 0 {
			if m.drain != nil {
				close(m.drain.done)
				m.drain = nil
			}
			m.sending = false
			m.mu.Unlock()
			return nil
		}
		n := 0
		for n < sendBatch && m.q.n > 0 {
			flight[n] = m.pop()
			batch[n] = flight[n].p
			n++
		}
		m.inflight, m.writing = flight[:n], true
		m.mu.Unlock()
		var err error
		sent, err = m.out.WritePreparedBatch(ctx, batch[:n])
		clear(batch[:n])
		if err != nil {
			// The connection is ending and reports why itself; leave
			// reports the messages that did not go out.
			m.mu.Lock()
			m.landed(sent)
			m.mu.Unlock()
			return nil
		}
	}
}

// landed ends the sender's write of the in-flight messages, the first
// sent of which went out: it lets go of those. The others, if the write
// failed, stay in flight for leave to report, since a failed write ends
// the connection. The caller holds m.mu.
func (m *Member) landed(sent int) {
	for _, e := range m.inflight[:sent] {
		m.bytes -= e.p.Len()
		m.count--
	}
	clear(m.inflight[:sent])
	m.inflight = m.inflight[sent:]
	if len(m.inflight) == 0 {
		m.inflight = nil
	}
	m.writing = false
	if m.space != nil {
		close(m.space)
		m.space = nil
	}
	if m.landing != nil {
		close(m.landing)
		m.landing = nil
	}
}

// sendBatch is how many queued messages the sender writes at once.
const sendBatch = 16

// leave removes the member from the hub when its connection ends.
func (m *Member) leave() {
	var drops []Drop
	m.mu.Lock()
	m.left = true
	reason := DropLeft
	if m.closeCode != 0 {
		reason = DropDisconnected
	}
	for m.q.n > 0 {
		m.discard(&drops, m.pop(), reason, m.policy)
	}
	m.q, m.keys = queue{}, nil
	var landing chan struct{}
	if m.writing {
		// Only the sender can tell which of the messages it is writing
		// went out; its write ends soon, the connection being over.
		m.landing = make(chan struct{})
		landing = m.landing
	}
	if m.space != nil {
		close(m.space)
		m.space = nil
	}
	m.mu.Unlock()

	h := m.hub
	h.mu.Lock()
	filters := make([]string, 0, len(m.subs))
	for f := range m.subs {
		h.trie.remove(f, m)
		filters = append(filters, f)
	}
	m.subs = nil
	h.mu.Unlock()
	for _, f := range filters {
		h.loseInterest(f)
	}
	h.joined.Delete(m)
	h.members.Add(-1)
	if landing != nil {
		<-landing
	}
	m.mu.Lock()
	for _, e := range m.inflight {
		m.discard(&drops, e, reason, m.policy)
	}
	m.inflight = nil
	m.mu.Unlock()
	if len(drops) > 0 {
		h.report(drops)
	}
	if n := m.dropped.Load(); n > 0 && h.onDrop == nil {
		h.log.Info("topics: member left after dropping messages",
			slog.Uint64("conn", m.conn.ID()), slog.Int64("dropped", n))
	}
	// Drain returns once the discarded messages have been reported, so
	// that a caller that counts drops sees them all.
	m.mu.Lock()
	m.settled = true
	if m.drain != nil {
		m.drain.err = ErrLeft
		close(m.drain.done)
		m.drain = nil
	}
	m.mu.Unlock()
}

// entry is one queued message.
type entry struct {
	p     *wsconn.Prepared
	topic string
	key   string // set under KeepLatest: the key it is indexed by
}

// queue is a ring of entries that grows as needed up to a limit and lets
// its memory go when it empties. Positions are absolute, so that an
// entry keeps its position while older ones leave.
type queue struct {
	buf  []entry
	head int
	n    int
	base uint64 // position of buf[head]
}

// push appends e and returns its position; limit caps the ring's size.
func (q *queue) push(e entry, limit int) uint64 {
	if q.n == len(q.buf) {
		size := min(max(4, 2*len(q.buf)), max(limit, q.n+1))
		buf := make([]entry, size)
		for i := range q.n {
			buf[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
	return q.base + uint64(q.n-1)
}

// pop removes the oldest entry, releasing the queue's reference to it.
func (q *queue) pop() (entry, uint64) {
	e, pos := q.buf[q.head], q.base
	q.buf[q.head] = entry{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	q.base++
	if q.n == 0 && len(q.buf) > 16 {
		q.buf, q.head = nil, 0
	}
	return e, pos
}

// dropSecond removes the second oldest entry, moving the oldest into its
// slot, and returns it with its position, which the oldest now has.
func (q *queue) dropSecond() (entry, uint64) {
	next := (q.head + 1) % len(q.buf)
	e := q.buf[next]
	q.buf[next], q.buf[q.head] = q.buf[q.head], entry{}
	q.head = next
	q.n--
	q.base++
	return e, q.base
}

// at returns the entry at position pos, which must be queued.
func (q *queue) at(pos uint64) *entry {
	return &q.buf[(q.head+int(pos-q.base))%len(q.buf)]
}
