package natsbroker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/group"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

var quiet = slog.New(slog.DiscardHandler)

// startNATS starts an embedded NATS server on 127.0.0.1 at port (-1 for
// a random one).
func startNATS(t testing.TB, port int) *server.Server {
	t.Helper()
	return startNATSWith(t, server.Options{Port: port})
}

// startNATSWith starts an embedded NATS server on 127.0.0.1 with o, whose
// Port is -1 for a random one.
func startNATSWith(t testing.TB, o server.Options) *server.Server {
	t.Helper()
	o.Host, o.NoLog, o.NoSigs = "127.0.0.1", true, true
	ns, err := server.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	return ns
}

func stopNATS(ns *server.Server) {
	ns.Shutdown()
	ns.WaitForShutdown()
}

// node is one application instance: a hub over its own NATS connection,
// serving a chat handler on loopback.
type node struct {
	hub    *topics.Hub
	nc     *nats.Conn
	broker *natsbroker.Broker
	url    string
	drops  atomic.Int64 // messages, by Drop.Count
	lost   atomic.Int64 // of drops, those with DropLost
}

// startNode serves the chat handler: each connection subscribes to the
// filters in its "sub" query values, says "ready", and publishes every
// message it receives to room/lobby, itself included.
func startNode(t testing.TB, natsURL string, policy topics.Policy) *node {
	t.Helper()
	nc, err := natsbroker.Connect(natsURL, nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	n := &node{nc: nc, broker: natsbroker.New(nc, &natsbroker.Options{Logger: quiet})}
	hub, err := topics.NewHub(&topics.Options{
		Broker: n.broker,
		Policy: policy,
		Limits: topics.Limits{MaxMessages: 4096},
		OnDrop: func(d topics.Drop) {
			n.drops.Add(int64(d.Count))
			if d.Reason == topics.DropLost {
				n.lost.Add(int64(d.Count))
			}
		},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Close() })
	n.hub = hub

	chat := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[[]string]) error {
		m := hub.Join(s.Conn, nil)
		for _, f := range s.Value {
			if err := m.Subscribe(f); err != nil {
				return err
			}
		}
		if err := out.WriteText(ctx, "ready"); err != nil {
			return err
		}
		for msg := range in.Messages(0) {
			if err := m.Publish(ctx, "room/lobby", msg, topics.ToSelf()); err != nil {
				return err
			}
		}
		return in.Err()
	}
	n.url = serveNode(t, chat, func(r *http.Request) []string { return r.URL.Query()["sub"] })
	return n
}

// serveNode serves handler over loopback the way the router does (the
// place in a group claimed before the 101, the group shut down by the
// test's cleanup), with value(r) as the session's value, and returns the
// ws:// URL.
func serveNode[T any](t testing.TB, handler wsconn.Handler[T], value func(*http.Request) T) string {
	t.Helper()
	g := &group.Group{}
	cfg := &wsconn.Config{Logger: quiet, CloseTimeout: time.Second}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The place is claimed before the 101, as the router does, so that
		// a client that saw the 101 is served even if Shutdown follows.
		ctx, err := g.Enter(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		u, err := handshake.Accept(w, r, nil)
		if err != nil {
			group.Leave(ctx)
			return
		}
		_ = wsconn.Serve(ctx, u, value(r), handler, cfg)
	}))
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
}

// client is one WebSocket client; it checks what it receives as it goes.
type client struct {
	t    testing.TB
	ws   *websocket.Conn
	node int

	mu       sync.Mutex
	last     map[string]int // publisher -> last sequence number seen
	count    map[string]int // phase -> messages seen
	fromNode map[string]int // phase/publisher's node -> messages seen
	err      error
	done     chan struct{}
}

func dial(t testing.TB, n *node, nodeIndex int, filters ...string) *client {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(n.url+"?"+url.Values{"sub": filters}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, ws: ws, node: nodeIndex, last: map[string]int{}, count: map[string]int{}, fromNode: map[string]int{}, done: make(chan struct{})}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "ready" {
		t.Fatalf("handshake message %q, %v", msg, err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	go c.read()
	t.Cleanup(func() {
		_ = ws.Close()
		<-c.done
	})
	return c
}

// Messages are "publisher/node/sequence/phase". Each publisher's sequence
// numbers must arrive strictly increasing: in order, and never twice.
func (c *client) read() {
	defer close(c.done)
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		parts := strings.Split(string(msg), "/")
		var seq int
		fmt.Sscan(parts[2], &seq)
		c.mu.Lock()
		if last, ok := c.last[parts[0]]; ok && seq <= last && c.err == nil {
			c.err = fmt.Errorf("from %s: %d after %d", parts[0], seq, last)
		}
		c.last[parts[0]] = seq
		c.count[parts[3]]++
		c.fromNode[parts[3]+"/"+parts[1]]++
		c.mu.Unlock()
	}
}

func (c *client) seen(key string, byNode bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if byNode {
		return c.fromNode[key]
	}
	return c.count[key]
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTwoNodesHundredClientsAndANATSRestart(t *testing.T) {
	ns := startNATS(t, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	defer func() { stopNATS(ns) }()
	natsURL := ns.ClientURL()

	block := topics.Block(10 * time.Second)
	nodes := []*node{startNode(t, natsURL, block), startNode(t, natsURL, block)}
	filterSets := [][]string{{"room/lobby"}, {"room/lobby", "room/+"}, {"room/#"}}
	var clients []*client
	for i := range 100 {
		clients = append(clients, dial(t, nodes[i%2], i%2, filterSets[i%3]...))
	}
	for i, n := range nodes {
		if got := n.hub.Subscribers("room/lobby"); got != 50 {
			t.Fatalf("node %d: %d subscribers", i, got)
		}
	}
	publishers := clients[:10] // five on each node
	seq := make([]int, len(publishers))
	publish := func(phase string, each int) {
		t.Helper()
		for range each {
			for i, p := range publishers {
				seq[i]++
				msg := fmt.Sprintf("p%d/%d/%d/%s", i, p.node, seq[i], phase)
				if err := p.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	everyoneHas := func(phase string, want int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("every client has the %d messages of %s", want, phase), 30*time.Second, func() bool {
			for _, c := range clients {
				if c.seen(phase, false) < want {
					return false
				}
			}
			return true
		})
		time.Sleep(50 * time.Millisecond) // time for a duplicate to show up
		for i, c := range clients {
			if got := c.seen(phase, false); got != want {
				t.Fatalf("client %d got %d messages in %s, want %d", i, got, phase, want)
			}
		}
	}

	// Phase 1: every message reaches every subscriber exactly once, in
	// order per publisher, across the two nodes.
	publish("before", 20)
	everyoneHas("before", 200)

	// Phase 2: NATS goes away. Clients stay connected and publishes still
	// reach the subscribers on the publisher's node.
	stopNATS(ns)
	waitFor(t, "both nodes notice", 10*time.Second, func() bool {
		return !nodes[0].nc.IsConnected() && !nodes[1].nc.IsConnected()
	})
	publish("during", 3)
	waitFor(t, "local deliveries during the outage", 10*time.Second, func() bool {
		for _, c := range clients {
			if c.seen(fmt.Sprintf("during/%d", c.node), true) < 15 {
				return false
			}
		}
		return true
	})

	// Phase 3: a new server on the same port. Both nodes reconnect and
	// resubscribe by themselves; traffic crosses nodes again.
	ns = startNATS(t, port)
	waitFor(t, "both nodes reconnect", 10*time.Second, func() bool {
		return nodes[0].nc.IsConnected() && nodes[1].nc.IsConnected()
	})
	for _, n := range nodes {
		if err := n.nc.FlushTimeout(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	publish("after", 20)
	everyoneHas("after", 200)

	crossed := 0
	for i, c := range clients {
		crossed += c.seen(fmt.Sprintf("during/%d", 1-c.node), true)
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
		// Messages published during the outage reached the other node at
		// most once: the ones nats.go had buffered, if they arrived after
		// the other node had resubscribed.
		if got := c.seen(fmt.Sprintf("during/%d", 1-c.node), true); got > 15 {
			t.Errorf("client %d got %d messages from the other node during the outage", i, got)
		}
	}
	t.Logf("of the 1500 deliveries to the other node published during the outage, %d arrived after reconnection", crossed)

	// What did not cross was counted: on the receiving node as messages
	// missing, and as drops with DropLost for each of its 50 members; on
	// the publishing node as refused or discarded.
	for i, n := range nodes {
		other := nodes[1-i].broker.Losses()
		missed := 0
		for _, c := range clients {
			if c.node == i {
				missed += 15 - c.seen(fmt.Sprintf("during/%d", 1-i), true)
			}
		}
		l := n.broker.Losses()
		if got := (l.Missing + other.NotSent + other.Discarded) * 50; got != int64(missed) {
			t.Errorf("node %d: members missed %d deliveries, brokers counted %d messages lost (%d)", i, missed, got/50, got)
		}
		if lost := n.lost.Load(); lost != l.Missing*50 {
			t.Errorf("node %d: the hub reported %d deliveries lost, the broker %d messages missing", i, lost, l.Missing)
		}
		if d := n.drops.Load(); d != n.lost.Load() || n.hub.Stats().Dropped != d {
			t.Errorf("node %d dropped %d messages (Stats %d), %d of them lost", i, d, n.hub.Stats().Dropped, n.lost.Load())
		}
		if l.Behind != 0 {
			t.Errorf("node %d fell behind: %+v", i, l)
		}
	}
}

func TestNATSInterestFollowsLocalSubscribers(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	n := startNode(t, ns.ClientURL(), topics.Policy{})
	a := dial(t, n, 0, "room/#", "room/lobby")
	b := dial(t, n, 0, "room/#")
	// "room/#" is two subjects, "room/lobby" one; the second subscriber
	// adds none.
	if got := n.nc.NumSubscriptions(); got != 3 {
		t.Errorf("%d NATS subscriptions, want 3", got)
	}
	_ = a.ws.Close()
	<-a.done
	waitFor(t, "a's subscriptions end", 5*time.Second, func() bool { return n.nc.NumSubscriptions() == 2 })
	_ = b.ws.Close()
	<-b.done
	waitFor(t, "b's subscriptions end", 5*time.Second, func() bool { return n.nc.NumSubscriptions() == 0 })
}

// Hubs on two NATS connections: a publish with a key and a binary payload
// arrives as it was sent, once, although two filters of the receiving
// hub match it.
func TestPublicationCrossesIntact(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	var got []topics.Publication
	var mu sync.Mutex
	recv := make(chan struct{}, 10)
	connect := func(opts ...nats.Option) *natsbroker.Broker {
		nc, err := nats.Connect(ns.ClientURL(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return natsbroker.New(nc, &natsbroker.Options{Prefix: "test", Logger: quiet})
	}
	// A's server echoes its publishes back: its node id must stop them.
	linkA, err := connect().Open(func(context.Context, topics.Publication) { t.Error("A received its own publish") })
	if err != nil {
		t.Fatal(err)
	}
	defer linkA.Close()
	linkB, err := connect(nats.NoEcho()).Open(func(_ context.Context, p topics.Publication) {
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
		recv <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer linkB.Close()
	for _, f := range []string{"s/+/x y", "s/#"} {
		if err := linkB.Subscribe(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := linkA.Subscribe("s/#"); err != nil {
		t.Fatal(err)
	}
	payload := []byte{0, 1, 2, 255}
	pub := topics.Publication{Topic: "s/é.1/x y", Key: "k1", Message: wsconn.Prepare(messages.Binary(payload))}
	if err := linkA.Publish(context.Background(), pub); err != nil {
		t.Fatal(err)
	}
	select {
	case <-recv:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing arrived")
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	p := got[0]
	m := p.Message.Message()
	if p.Topic != pub.Topic || p.Key != "k1" || m.Kind != messages.KindBinary || string(m.Payload) != string(payload) {
		t.Errorf("got %q key %q %v %x", p.Topic, p.Key, m.Kind, m.Payload)
	}
}
