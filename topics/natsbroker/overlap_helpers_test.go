package natsbroker_test

// Helpers of the overlap_*_test.go files: a node whose Link records what
// it is handed, a publisher, the subjects a node is expected to hold on
// the NATS server (computed from the documented mapping), and a TCP proxy
// in front of NATS that can delay or stall one direction.

import (
	"context"
	"encoding/base64"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

const rcGuard = 10 * time.Second

// rcConnect connects to NATS the way a node does, reconnecting fast; the
// connection closes at cleanup.
func rcConnect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	base := []nats.Option{nats.ReconnectWait(20 * time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})}
	nc, err := natsbroker.Connect(url, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// rcDelivery is one publication a Link handed its hub.
type rcDelivery struct {
	topic, payload string
	lost           int
}

// rcNode is a Link over its own Broker that records what it is handed.
type rcNode struct {
	nc     *nats.Conn
	broker *natsbroker.Broker
	link   topics.Link

	mu      sync.Mutex
	got     []rcDelivery
	marker  map[string]chan struct{} // payload -> closed when it arrives
	block   chan struct{}            // when not nil, each delivery waits for a receive from it
	entered chan string              // when not nil, gets each payload as its delivery begins (if room)
}

// rcOpen opens a Link on broker b over nc; it closes at cleanup.
func rcOpen(t *testing.T, nc *nats.Conn, b *natsbroker.Broker) *rcNode {
	t.Helper()
	n := &rcNode{nc: nc, broker: b, marker: map[string]chan struct{}{}}
	link, err := b.Open(n.deliver)
	if err != nil {
		t.Fatal(err)
	}
	n.link = link
	t.Cleanup(func() { _ = link.Close() })
	return n
}

// rcStart connects a node to url with broker options o.
func rcStart(t *testing.T, url string, o *natsbroker.Options, opts ...nats.Option) *rcNode {
	t.Helper()
	nc := rcConnect(t, url, opts...)
	if o == nil {
		o = &natsbroker.Options{}
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	return rcOpen(t, nc, natsbroker.New(nc, o))
}

func (n *rcNode) deliver(ctx context.Context, p topics.Publication) {
	n.mu.Lock()
	block, entered := n.block, n.entered
	n.mu.Unlock()
	if entered != nil {
		select {
		case entered <- string(p.Message.Message().Payload):
		default:
		}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
		}
	}
	payload := string(p.Message.Message().Payload)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, rcDelivery{topic: p.Topic, payload: payload, lost: p.Lost})
	if ch := n.marker[payload]; ch != nil {
		close(ch)
		delete(n.marker, payload)
	}
}

// expectMarker registers payload as a marker; the channel closes when it
// is delivered.
func (n *rcNode) expectMarker(payload string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := make(chan struct{})
	n.marker[payload] = ch
	return ch
}

// take returns and forgets what was delivered so far.
func (n *rcNode) take() []rcDelivery {
	n.mu.Lock()
	defer n.mu.Unlock()
	got := n.got
	n.got = nil
	return got
}

func (n *rcNode) subscribe(t *testing.T, f string) {
	t.Helper()
	if err := n.link.Subscribe(f); err != nil {
		t.Fatalf("Subscribe(%q): %v", f, err)
	}
}

func (n *rcNode) unsubscribe(t *testing.T, f string) {
	t.Helper()
	if err := n.link.Unsubscribe(f); err != nil {
		t.Fatalf("Unsubscribe(%q): %v", f, err)
	}
}

// rcPublish publishes payload to topic through link.
func rcPublish(link topics.Link, topic, payload string) error {
	m := wsconn.Prepare(messages.Message{Kind: messages.KindText, Payload: []byte(payload)})
	return link.Publish(context.Background(), topics.Publication{Topic: topic, Message: m})
}

// rcSync publishes marker to topic through pub and waits until n has it:
// what pub published before reached n before it.
func rcSync(t *testing.T, pub *rcNode, n *rcNode, topic, marker string) {
	t.Helper()
	ch := n.expectMarker(marker)
	if err := rcPublish(pub.link, topic, marker); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(rcGuard):
		t.Fatalf("marker %q on %s did not arrive", marker, topic)
	}
}

// rcPlain reports whether level travels as it is (the documented rule).
func rcPlain(level string) bool {
	if level == "" || level[0] == '~' {
		return false
	}
	for _, c := range []byte(level) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-_$:@=~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// rcSubjects returns the NATS subjects of filter under prefix, by the
// documented mapping: '+' as '*', a trailing '#' as '>' plus the parent
// subject, escaped levels as "~" and unpadded URL-safe base64.
func rcSubjects(prefix, filter string) []string {
	levels := strings.Split(filter, "/")
	toks := []string{prefix}
	for i, l := range levels {
		switch {
		case l == "#" && i == len(levels)-1:
			if i == 0 {
				return []string{prefix + ".>"}
			}
			parent := strings.Join(toks, ".")
			return []string{parent, parent + ".>"}
		case l == "+":
			toks = append(toks, "*")
		case rcPlain(l):
			toks = append(toks, l)
		default:
			toks = append(toks, "~"+base64.RawURLEncoding.EncodeToString([]byte(l)))
		}
	}
	return []string{strings.Join(toks, ".")}
}

// rcHeld returns, sorted, the subjects a node with filters holds: each
// filter's own, one subscription per subject of each filter.
func rcHeld(prefix string, filters []string) []string {
	var out []string
	for _, f := range filters {
		out = append(out, rcSubjects(prefix, f)...)
	}
	slices.Sort(out)
	return out
}

// rcServerSubs returns, sorted, the subjects the server holds for nc.
func rcServerSubs(t *testing.T, ns *server.Server, nc *nats.Conn) []string {
	t.Helper()
	if err := nc.FlushTimeout(rcGuard); err != nil {
		t.Fatal(err)
	}
	cid, err := nc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	cz, err := ns.Connz(&server.ConnzOptions{Subscriptions: true, CID: cid})
	if err != nil {
		t.Fatal(err)
	}
	if len(cz.Conns) != 1 {
		t.Fatalf("the server knows %d connections with id %d", len(cz.Conns), cid)
	}
	subs := slices.Clone(cz.Conns[0].Subs)
	slices.Sort(subs)
	return subs
}

// rcProxy is a TCP proxy in front of a NATS server. Each direction can be
// delayed (every chunk is held that long after it was read) and the
// server-to-client direction can be stalled (nothing is forwarded until
// resumed). cut closes the connections it carries.
type rcProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	c2s    time.Duration // delay client to server
	s2c    time.Duration // delay server to client
	stall  chan struct{} // when not nil, server to client waits for it to close
	resume func()        // closes stall, once
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

func rcStartProxy(t *testing.T, target string) *rcProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rcProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *rcProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *rcProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			return
		}
		p.conns = append(p.conns, c, s)
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, s, true)  // server to client
		go p.pipe(s, c, false) // client to server
	}
}

// rcChunk is data read at a time.
type rcChunk struct {
	data []byte
	at   time.Time
}

// pipe copies from src to dst, holding each chunk for the direction's
// delay and, from the server, while stalled.
func (p *rcProxy) pipe(dst, src net.Conn, fromServer bool) {
	defer p.wg.Done()
	q := make(chan rcChunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ch := range q {
			p.mu.Lock()
			d := p.c2s
			if fromServer {
				d = p.s2c
			}
			stall := p.stall
			p.mu.Unlock()
			if fromServer && stall != nil {
				<-stall
			}
			if wait := time.Until(ch.at.Add(d)); wait > 0 {
				time.Sleep(wait) // the simulated latency
			}
			if _, err := dst.Write(ch.data); err != nil {
				_ = src.Close()
				for range q {
				}
				return
			}
		}
		_ = dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			q <- rcChunk{data: slices.Clone(buf[:n]), at: time.Now()}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
	_ = dst.Close()
}

func (p *rcProxy) setDelay(c2s, s2c time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.c2s, p.s2c = c2s, s2c
}

// stallServer holds what the server sends until the returned function is
// called.
func (p *rcProxy) stallServer() (resume func()) {
	ch := make(chan struct{})
	var once sync.Once
	resume = func() {
		once.Do(func() {
			p.mu.Lock()
			if p.stall == ch {
				p.stall = nil
			}
			p.mu.Unlock()
			close(ch)
		})
	}
	p.mu.Lock()
	p.stall, p.resume = ch, resume
	p.mu.Unlock()
	return resume
}

// cut closes every connection the proxy carries; clients reconnect.
func (p *rcProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (p *rcProxy) close() {
	p.mu.Lock()
	p.closed = true
	resume := p.resume
	p.mu.Unlock()
	if resume != nil {
		resume()
	}
	_ = p.ln.Close()
	p.cut()
	p.wg.Wait()
}
