package natsbroker_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

// guard is how long a test waits for something that should happen at
// once: a failure guard, not a synchronisation.
const guard = 10 * time.Second

// gate is a NATS dialer whose connection the test can cut, and keep cut:
// while it is shut, reconnection attempts fail.
type gate struct {
	mu    sync.Mutex
	shut  bool
	conns []net.Conn
}

func (g *gate) Dial(network, address string) (net.Conn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut {
		return nil, errors.New("gate shut")
	}
	c, err := net.Dial(network, address)
	if err == nil {
		g.conns = append(g.conns, c)
	}
	return c, err
}

// cut closes the node's connection to NATS and refuses new ones.
func (g *gate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = true
	for _, c := range g.conns {
		_ = c.Close()
	}
	g.conns = nil
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = false
}

// pnodeOptions shape a pnode.
type pnodeOptions struct {
	gate    *gate                             // nil: dial directly
	nats    []nats.Option                     // after the test's own
	plain   bool                              // nats.Connect rather than natsbroker.Connect
	broker  natsbroker.Options                // Logger defaults to the node's log buffer
	wrap    func(topics.Broker) topics.Broker // wraps the broker for the hub
	policy  topics.Policy
	onDrop  func(topics.Drop)
	noServe bool // no WebSocket server
}

// pnode is an application node: a hub on its own NATS connection, and a
// WebSocket server whose connections join the hub. A connection subscribes
// to its "sub" query values, hands its member to the test, says "ready",
// and publishes each message it receives to its "pub" query value as a
// member, answering "published:ok" or what the error wraps.
type pnode struct {
	hub     *topics.Hub
	nc      *nats.Conn
	broker  *natsbroker.Broker
	url     string
	members chan *topics.Member
	logs    *testlog.Buffer
}

func startPNode(t *testing.T, natsURL string, o pnodeOptions) *pnode {
	t.Helper()
	n := &pnode{members: make(chan *topics.Member, 16), logs: &testlog.Buffer{}}
	opts := []nats.Option{nats.ReconnectWait(20 * time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})} // no slow-consumer lines on stderr
	if o.gate != nil {
		opts = append(opts, nats.SetCustomDialer(o.gate))
	}
	opts = append(opts, o.nats...)
	var err error
	if o.plain {
		n.nc, err = nats.Connect(natsURL, opts...)
	} else {
		n.nc, err = natsbroker.Connect(natsURL, opts...)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.nc.Close)
	bo := o.broker
	if bo.Logger == nil {
		bo.Logger = slog.New(slog.NewTextHandler(n.logs, nil))
	}
	n.broker = natsbroker.New(n.nc, &bo)
	var b topics.Broker = n.broker
	if o.wrap != nil {
		b = o.wrap(b)
	}
	n.hub, err = topics.NewHub(&topics.Options{Broker: b, Policy: o.policy, OnDrop: o.onDrop, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.hub.Close() })
	if o.noServe {
		return n
	}
	hub := n.hub
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[url.Values]) error {
		m := hub.Join(s.Conn, nil)
		for _, f := range s.Value["sub"] {
			if err := m.Subscribe(f); err != nil {
				return err
			}
		}
		n.members <- m
		if err := out.WriteText(ctx, "ready"); err != nil {
			return err
		}
		for msg := range in.Messages(0) {
			reply := "published:ok"
			if err := m.Publish(ctx, s.Value.Get("pub"), msg); err != nil {
				reply = fmt.Sprintf("published:notsent=%v bufexceeded=%v",
					errors.Is(err, natsbroker.ErrNotSent), errors.Is(err, nats.ErrReconnectBufExceeded))
			}
			if err := out.WriteText(ctx, reply); err != nil {
				return err
			}
		}
		return in.Err()
	}
	n.url = serveNode(t, handler, func(r *http.Request) url.Values { return r.URL.Query() })
	return n
}

// join connects a WebSocket client to n, subscribed to filters, publishing
// to pub; it returns once the server said "ready".
func (n *pnode) join(t *testing.T, pub string, filters ...string) (*websocket.Conn, *topics.Member) {
	t.Helper()
	q := url.Values{"sub": filters}
	if pub != "" {
		q.Set("pub", pub)
	}
	ws, _, err := websocket.DefaultDialer.Dial(n.url+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	expect(t, ws, "ready")
	select {
	case m := <-n.members:
		return ws, m
	case <-time.After(guard):
		t.Fatal("no member")
	}
	return nil, nil
}

// expect reads the next messages of ws and fails unless they are want.
func expect(t *testing.T, ws *websocket.Conn, want ...string) {
	t.Helper()
	for _, w := range want {
		_ = ws.SetReadDeadline(time.Now().Add(guard))
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("reading %q: %v", w, err)
		}
		if string(msg) != w {
			t.Fatalf("got %q, want %q", msg, w)
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
}

func publish(t *testing.T, hub *topics.Hub, topic string, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if err := hub.Publish(context.Background(), topic, messages.Text(p)); err != nil {
			t.Fatalf("publish %q to %s: %v", p, topic, err)
		}
	}
}

func flush(t *testing.T, ncs ...*nats.Conn) {
	t.Helper()
	for _, nc := range ncs {
		if err := nc.FlushTimeout(guard); err != nil {
			t.Fatal(err)
		}
	}
}

// docs/topics.md "Reconnection": Connect sets MaxReconnects(-1),
// ReconnectWait(250ms) plus jitter, ReconnectBufSize(8 MiB) and NoEcho;
// later options override them; New warns about a connection that gives up.
func TestPromiseConnectOptionsAndGiveUpWarning(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	nc, err := natsbroker.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	o := nc.Opts
	if o.MaxReconnect != -1 || o.ReconnectWait != 250*time.Millisecond || o.ReconnectBufSize != 8<<20 || !o.NoEcho || o.ReconnectJitter <= 0 {
		t.Errorf("Connect options: MaxReconnect %d, ReconnectWait %v, ReconnectBufSize %d, NoEcho %v, jitter %v",
			o.MaxReconnect, o.ReconnectWait, o.ReconnectBufSize, o.NoEcho, o.ReconnectJitter)
	}
	over, err := natsbroker.Connect(ns.ClientURL(), nats.ReconnectBufSize(1024), nats.MaxReconnects(3))
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if over.Opts.ReconnectBufSize != 1024 || over.Opts.MaxReconnect != 3 {
		t.Errorf("overriding options: buf %d, max reconnects %d", over.Opts.ReconnectBufSize, over.Opts.MaxReconnect)
	}

	var good, bad testlog.Buffer
	natsbroker.New(nc, &natsbroker.Options{Logger: slog.New(slog.NewTextHandler(&good, nil))})
	natsbroker.New(over, &natsbroker.Options{Logger: slog.New(slog.NewTextHandler(&bad, nil))})
	if good.String() != "" {
		t.Errorf("New warned about Connect's connection: %s", good.String())
	}
	if !strings.Contains(bad.String(), "level=WARN") || !strings.Contains(bad.String(), "max_reconnects=3") {
		t.Errorf("New did not warn about a connection that gives up: %q", bad.String())
	}
}

// docs/topics.md "Subjects": a topic travels on colibri.topics. followed
// by its levels, Options.Prefix replacing the prefix; a level that is not a
// plain token travels as "~" and its base64.
func TestPromiseSubjectOnTheWire(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	raw, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	sub, err := raw.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, raw)
	def := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
	custom := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true, broker: natsbroker.Options{Prefix: "app1.t"}})
	b64 := func(s string) string { return "~" + base64.RawURLEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		n       *pnode
		topic   string
		subject string
	}{
		{def, "room/lobby", "colibri.topics.room.lobby"},
		{def, "a//b", "colibri.topics.a." + b64("") + ".b"},
		{def, "v1.2/x y", "colibri.topics." + b64("v1.2") + "." + b64("x y")},
		{def, "p*/q>", "colibri.topics." + b64("p*") + "." + b64("q>")},
		{def, "café/$sys", "colibri.topics." + b64("café") + ".$sys"},
		{custom, "room/lobby", "app1.t.room.lobby"},
	}
	for _, c := range cases {
		publish(t, c.n.hub, c.topic, "x")
		msg, err := sub.NextMsg(guard)
		if err != nil {
			t.Fatalf("%s: %v", c.topic, err)
		}
		if msg.Subject != c.subject {
			t.Errorf("topic %q went on %q, want %q", c.topic, msg.Subject, c.subject)
		}
	}
}

// docs/topics.md "Subjects" and "Topics and filters" across nodes: '+'
// as '*', '#' as '>' plus the parent subject ("a/#" gets "a"), '#' does
// not sweep up "$" topics, escaped levels arrive intact; a node without
// subscribers to a topic receives none of its traffic.
func TestPromiseFiltersMatchAcrossNodes(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	pub := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
	sub := startPNode(t, ns.ClientURL(), pnodeOptions{})
	idle := startPNode(t, ns.ClientURL(), pnodeOptions{})
	aHash, _ := sub.join(t, "", "a/#")
	hash, _ := sub.join(t, "", "#")
	sys, _ := sub.join(t, "", "$sys/#")
	xPlus, _ := sub.join(t, "", "x/+")
	idle.join(t, "", "elsewhere/+")

	steps := []struct{ topic, payload string }{
		{"a", "p1"}, {"$sys/load", "p2"}, {"x/y", "p3"}, {"x/y/z", "p4"},
		{"v1.2/x y", "p5"}, {"a//b", "p6"},
		{"a/end", "e1"}, {"$sys/end", "e2"}, {"x/end", "e3"},
	}
	for _, s := range steps {
		publish(t, pub.hub, s.topic, s.payload)
	}
	expect(t, aHash, "p1", "p6", "e1")
	expect(t, hash, "p1", "p3", "p4", "p5", "p6", "e1", "e3")
	expect(t, sys, "p2", "e2")
	expect(t, xPlus, "p3", "e3")

	flush(t, pub.nc, idle.nc)
	if in := idle.nc.Stats().InMsgs; in != 0 {
		t.Errorf("a node without subscribers to these topics received %d messages", in)
	}
}

// docs/topics.md "Exactly once per node": a node drops its own messages
// even when its NATS connection echoes them back.
func TestPromiseOwnMessagesNotDeliveredTwiceWithEcho(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	echoing := startPNode(t, ns.ClientURL(), pnodeOptions{plain: true, broker: natsbroker.Options{Logger: quiet}})
	other := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
	ws, _ := echoing.join(t, "", "t")
	publish(t, echoing.hub, "t", "one")
	// The echo of "one", if delivered, would reach the hub through the same
	// connection and goroutine before other's marker.
	flush(t, echoing.nc)
	publish(t, other.hub, "t", "marker")
	expect(t, ws, "one", "marker")
}

// docs/scaling.md "What an outage loses" and docs/topics.md
// "Reconnection": while the publishing node is cut off from NATS, local
// delivery goes on, clients stay connected, and what it published is sent
// from the reconnect buffer once it is back, in order, with nothing
// counted lost.
func TestPromisePublisherOutageBufferedAndDelivered(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	g := &gate{}
	a := startPNode(t, ns.ClientURL(), pnodeOptions{gate: g})
	b := startPNode(t, ns.ClientURL(), pnodeOptions{})
	local, _ := a.join(t, "", "t")
	remote, _ := b.join(t, "", "t")
	publish(t, a.hub, "t", "before")
	expect(t, local, "before")
	expect(t, remote, "before")

	g.cut()
	waitFor(t, "A is cut off", guard, func() bool { return !a.nc.IsConnected() })
	publish(t, a.hub, "t", "d1", "d2", "d3")
	expect(t, local, "d1", "d2", "d3")

	g.open()
	expect(t, remote, "d1", "d2", "d3")
	publish(t, a.hub, "t", "after")
	expect(t, local, "after")
	expect(t, remote, "after")
	if la, lb := a.broker.Losses(), b.broker.Losses(); la.Total() != 0 || lb.Total() != 0 {
		t.Errorf("losses counted without loss: A %+v, B %+v", la, lb)
	}
}

// docs/scaling.md "What an outage loses": messages published while a
// receiving node is disconnected never reach it; the node counts them in
// Missing when the publisher's next message arrives, its hub reports them
// as DropLost once per member reached (Hub.Stats, Member.Dropped, OnDrop
// with Count, colibri.topics.drops with reason "lost"), and the broker
// logs a warning with the number.
func TestPromiseReceiverOutageCountedAsLost(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	obs, err := observe.New(observe.Options{MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var drops []topics.Drop
	onDrop := func(d topics.Drop) {
		mu.Lock()
		drops = append(drops, d)
		mu.Unlock()
		obs.Dropped(d)
	}
	g := &gate{}
	a := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
	b := startPNode(t, ns.ClientURL(), pnodeOptions{gate: g, policy: topics.DropOldest, onDrop: onDrop})
	ws1, m1 := b.join(t, "", "t")
	ws2, m2 := b.join(t, "", "t/#")
	publish(t, a.hub, "t", "first")
	expect(t, ws1, "first")
	expect(t, ws2, "first")

	g.cut()
	waitFor(t, "B is cut off", guard, func() bool { return !b.nc.IsConnected() })
	publish(t, a.hub, "t", "l1", "l2", "l3", "l4", "l5")
	flush(t, a.nc)
	g.open()
	waitFor(t, "B reconnects", guard, func() bool { return b.nc.IsConnected() })
	flush(t, b.nc) // its subscriptions are back on the server
	publish(t, a.hub, "t", "next")
	expect(t, ws1, "next")
	expect(t, ws2, "next")

	if l := b.broker.Losses(); l.Missing != 5 || l.Behind != 0 || l.Total() != 5 {
		t.Errorf("B's losses %+v, want 5 missing", l)
	}
	if l := a.broker.Losses(); l.Total() != 0 {
		t.Errorf("A's losses %+v, want none", l)
	}
	if m1.Dropped() != 5 || m2.Dropped() != 5 || b.hub.Stats().Dropped != 10 {
		t.Errorf("dropped: members %d and %d, hub %d; want 5, 5, 10", m1.Dropped(), m2.Dropped(), b.hub.Stats().Dropped)
	}
	// The hub calls OnDrop after the delivery that found the gap, so a
	// client can read "next" before the second call.
	var got []topics.Drop
	waitFor(t, "OnDrop called for both members", guard, func() bool {
		mu.Lock()
		defer mu.Unlock()
		got = append(got[:0], drops...)
		return len(got) >= 2
	})
	if len(got) != 2 {
		t.Fatalf("OnDrop called %d times, want once per member: %+v", len(got), got)
	}
	for _, d := range got {
		if d.Reason != topics.DropLost || d.Count != 5 || d.Topic != "t" || d.Bytes != 0 {
			t.Errorf("drop %+v, want DropLost of 5 on t", d)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := attribute.NewSet(observe.AttrRoute.String(""), observe.AttrDropReason.String("lost"), observe.AttrDropPolicy.String("drop-oldest"))
	var lost int64 = -1
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			if md.Name != "colibri.topics.drops" {
				continue
			}
			for _, p := range md.Data.(metricdata.Sum[int64]).DataPoints {
				if p.Attributes.Equals(&want) {
					lost = p.Value
				}
			}
		}
	}
	if lost != 10 {
		t.Errorf("colibri.topics.drops{reason=lost} = %d, want 10", lost)
	}
	waitFor(t, "the broker logs the loss", guard, func() bool {
		return strings.Contains(b.logs.String(), "level=WARN") && strings.Contains(b.logs.String(), "lost=5")
	})
}

// docs/topics.md "Reconnection" and scaling.md: once the reconnect buffer
// is full, Hub.Publish and Member.Publish return an error wrapping both
// ErrNotSent and nats.ErrReconnectBufExceeded after the local delivery;
// the message is counted NotSent, and not again as Missing by receivers.
func TestPromiseFullReconnectBufferRefusesAfterLocalDelivery(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	g := &gate{}
	a := startPNode(t, ns.ClientURL(), pnodeOptions{gate: g, nats: []nats.Option{nats.ReconnectBufSize(64)}})
	b := startPNode(t, ns.ClientURL(), pnodeOptions{})
	local, _ := a.join(t, "", "t")
	publisher, _ := a.join(t, "t", "other")
	remote, _ := b.join(t, "", "t")

	g.cut()
	waitFor(t, "A is cut off", guard, func() bool { return !a.nc.IsConnected() })
	long := strings.Repeat("x", 100)
	publish(t, a.hub, "t", "buffered-"+long) // fills the buffer past its limit
	expect(t, local, "buffered-"+long)
	err := a.hub.Publish(context.Background(), "t", messages.Text("refused-"+long))
	if !errors.Is(err, natsbroker.ErrNotSent) || !errors.Is(err, nats.ErrReconnectBufExceeded) {
		t.Errorf("Hub.Publish with a full reconnect buffer: %v, want ErrNotSent and ErrReconnectBufExceeded", err)
	}
	expect(t, local, "refused-"+long)
	if err := publisher.WriteMessage(websocket.TextMessage, []byte("member-"+long)); err != nil {
		t.Fatal(err)
	}
	expect(t, publisher, "published:notsent=true bufexceeded=true")
	expect(t, local, "member-"+long)
	if l := a.broker.Losses(); l.NotSent != 2 {
		t.Errorf("A's losses %+v, want 2 not sent", l)
	}

	g.open()
	expect(t, remote, "buffered-"+long)
	publish(t, a.hub, "t", "after")
	expect(t, remote, "after")
	expect(t, local, "after")
	if l := b.broker.Losses(); l.Total() != 0 {
		t.Errorf("B counted %+v for messages A counted as not sent", l)
	}
}

// natsbroker.ErrNotSent: NATS refusing a publish for a payload above the
// server's limit, or a closed connection, leaves the local subscribers
// with the message, counts NotSent, and opens no gap for receivers.
func TestPromiseRefusedPublishesAreNotSent(t *testing.T) {
	ns := startNATSWith(t, server.Options{Port: -1, MaxPayload: 512})
	defer stopNATS(ns)
	a := startPNode(t, ns.ClientURL(), pnodeOptions{})
	b := startPNode(t, ns.ClientURL(), pnodeOptions{})
	local, _ := a.join(t, "", "t")
	remote, _ := b.join(t, "", "t")
	publish(t, a.hub, "t", "small")
	expect(t, remote, "small")
	big := strings.Repeat("y", 1024)
	err := a.hub.Publish(context.Background(), "t", messages.Text(big))
	if !errors.Is(err, natsbroker.ErrNotSent) || !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("publish above max payload: %v, want ErrNotSent and ErrMaxPayload", err)
	}
	publish(t, a.hub, "t", "after")
	expect(t, local, "small", big, "after")
	expect(t, remote, "after")
	if la, lb := a.broker.Losses(), b.broker.Losses(); la.NotSent != 1 || la.Total() != 1 || lb.Total() != 0 {
		t.Errorf("losses A %+v B %+v, want one not sent on A", la, lb)
	}

	a.nc.Close()
	err = a.hub.Publish(context.Background(), "t", messages.Text("closed"))
	if !errors.Is(err, natsbroker.ErrNotSent) || !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("publish on a closed connection: %v, want ErrNotSent and ErrConnectionClosed", err)
	}
	expect(t, local, "closed")
	if la := a.broker.Losses(); la.NotSent != 2 || la.Discarded != 0 {
		t.Errorf("A's losses %+v, want 2 not sent", la)
	}
}

// docs/topics.md "Subjects": once Subscribe returns, publishes made on
// other nodes reach the new subscriber.
func TestPromiseSubscribeConfirmedBeforeItReturns(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	a := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
	b := startPNode(t, ns.ClientURL(), pnodeOptions{})
	for i := range 20 {
		topic := fmt.Sprintf("fresh/%d", i)
		ws, _ := b.join(t, "", topic)
		publish(t, a.hub, topic, "hello")
		expect(t, ws, "hello")
		_ = ws.Close()
	}
}

// natsbroker.Options.SubscribeTimeout: while disconnected Subscribe does
// not wait; the subscription takes effect on reconnection.
func TestPromiseSubscribeWhileDisconnectedTakesEffectOnReconnect(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	g := &gate{}
	a := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
	b := startPNode(t, ns.ClientURL(), pnodeOptions{gate: g, broker: natsbroker.Options{SubscribeTimeout: time.Hour}})
	g.cut()
	waitFor(t, "B is cut off", guard, func() bool { return !b.nc.IsConnected() })
	ws, _ := b.join(t, "", "late") // fails after guard if Subscribe waits
	g.open()
	waitFor(t, "B reconnects", guard, func() bool { return b.nc.IsConnected() })
	flush(t, b.nc)
	publish(t, a.hub, "late", "arrived")
	expect(t, ws, "arrived")
}

// gatedBroker holds its hub's deliveries until released, to make the
// hub fall behind what NATS delivers.
type gatedBroker struct {
	b       topics.Broker
	entered chan struct{}
	release chan struct{}
}

func (g *gatedBroker) Open(deliver func(context.Context, topics.Publication)) (topics.Link, error) {
	var once sync.Once
	return g.b.Open(func(ctx context.Context, p topics.Publication) {
		once.Do(func() {
			close(g.entered)
			<-g.release
		})
		deliver(ctx, p)
	})
}

// natsbroker.Options.Pending and docs/scaling.md: past Pending, NATS drops
// messages for a node; they are counted in Behind and in Missing, the hub
// reports them as DropLost, and the broker logs it.
func TestPromiseFallingBehindPendingIsCounted(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	a, b, gb := behindNodes(t, ns.ClientURL())
	ws, m := b.join(t, "", "t")
	publish(t, a.hub, "t", "m1")
	select {
	case <-gb.entered: // B's receiving goroutine holds m1
	case <-time.After(guard):
		t.Fatal("m1 never reached B's hub")
	}
	// m2..m5 fill B's pending queue of 4; m6..m10 are dropped by NATS.
	publish(t, a.hub, "t", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10")
	flush(t, a.nc, b.nc) // B's connection has handled all ten
	close(gb.release)
	// m11 only once B's queue is drained, or NATS could drop it too.
	expect(t, ws, "m1", "m2", "m3", "m4", "m5")
	publish(t, a.hub, "t", "m11")
	expect(t, ws, "m11")
	waitFor(t, "Behind is reported", guard, func() bool { return b.broker.Losses().Behind == 5 })
	if l := b.broker.Losses(); l.Missing != 5 || l.Behind != 5 || b.broker.Lost() != 5 {
		t.Errorf("B's losses %+v (Lost %d), want 5 missing, 5 of them behind", l, b.broker.Lost())
	}
	if m.Dropped() != 5 {
		t.Errorf("member dropped %d, want 5", m.Dropped())
	}
	if !strings.Contains(b.logs.String(), "NATS dropped messages for this node") {
		t.Errorf("no log line about falling behind:\n%s", b.logs.String())
	}
}

// The Link interface and the package's goleak TestMain: a hub's broker
// goroutines end when the hub closes, connected or in an outage, and Close
// does not wait for the NATS server to come back.
func TestPromiseHubCloseLeavesNoGoroutines(t *testing.T) {
	for _, outage := range []bool{false, true} {
		t.Run(fmt.Sprintf("outage=%v", outage), func(t *testing.T) {
			ns := startNATS(t, -1)
			defer stopNATS(ns)
			g := &gate{}
			other := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
			nc, err := natsbroker.Connect(ns.ClientURL(), nats.SetCustomDialer(g), nats.ReconnectWait(20*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if outage {
				g.cut()
				waitFor(t, "cut off", guard, func() bool { return !nc.IsConnected() })
			}
			before := goleak.IgnoreCurrent()
			hub, err := topics.NewHub(&topics.Options{Broker: natsbroker.New(nc, &natsbroker.Options{Logger: quiet}), Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			publish(t, hub, "t", "x")
			publish(t, other.hub, "t", "y")
			done := make(chan error, 1)
			go func() { done <- hub.Close() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Close: %v", err)
				}
			case <-time.After(guard):
				t.Fatal("Hub.Close did not return")
			}
			goleak.VerifyNone(t, before)
		})
	}
}

// natsbroker.Broker.Open: it fails when the NATS connection is closed, so
// a hub cannot be made on it.
func TestPromiseOpenFailsOnClosedConnection(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	nc, err := natsbroker.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	hub, err := topics.NewHub(&topics.Options{Broker: natsbroker.New(nc, &natsbroker.Options{Logger: quiet}), Logger: quiet})
	if err == nil {
		_ = hub.Close()
		t.Fatal("NewHub on a closed NATS connection succeeded")
	}
	if !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("NewHub: %v, want ErrConnectionClosed", err)
	}
}

// docs/scaling.md "What an outage loses": "The counts err on the side of
// missing a loss, never of counting one that did not happen", with a
// Broker shared by several hubs (Broker's doc). One hub closes during an
// outage while the NATS connection, which serves the other hub, stays and
// reconnects: what the closed hub published is delivered from the
// reconnect buffer, so it must not be counted as discarded.
func TestPromiseBufferedMessagesThatArriveAreNotCountedLost(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	g := &gate{}
	a := startPNode(t, ns.ClientURL(), pnodeOptions{gate: g, noServe: true})
	b := startPNode(t, ns.ClientURL(), pnodeOptions{})
	second, err := topics.NewHub(&topics.Options{Broker: a.broker, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	remote, _ := b.join(t, "", "t")

	g.cut()
	waitFor(t, "A is cut off", guard, func() bool { return !a.nc.IsConnected() })
	publish(t, a.hub, "t", "d1", "d2", "d3")
	if err := a.hub.Close(); err != nil {
		t.Fatal(err)
	}
	g.open()
	expect(t, remote, "d1", "d2", "d3")
	publish(t, second, "t", "after")
	expect(t, remote, "after")
	if la, lb := a.broker.Losses(), b.broker.Losses(); la.Total() != 0 || lb.Total() != 0 {
		t.Errorf("every message arrived, yet losses were counted: A %+v, B %+v", la, lb)
	}
}
