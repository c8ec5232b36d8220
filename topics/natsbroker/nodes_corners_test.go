package natsbroker_test

// Corners of topics crossing nodes over NATS: ordering and exactly-once
// between sibling hubs and other nodes, loss accounting with overlapping
// filters and with several hubs per node, the NATS interest a node holds
// across restarts and churn, Close with messages in flight, and subject
// mapping. Helpers come from multinode_test.go (startNATS, stopNATS,
// serveNode, waitFor, quiet), outage_test.go (connectBroker), promises_test.go
// (startPNode, gate, gatedBroker, expect, publish, flush, guard),
// lifecycle_corners_test.go (serveCorner, cornerDrops) and helpers_test.go
// (behindNodes).

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

// nodesServe serves hub on loopback: each connection joins it, subscribes
// to its "sub" query values, says "ready", and publishes every message it
// receives to its "pub" query value, with ToSelf when "self" is set. It
// returns the ws:// URL.
func nodesServe(t *testing.T, hub *topics.Hub) string {
	t.Helper()
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[url.Values]) error {
		m := hub.Join(s.Conn, nil)
		for _, f := range s.Value["sub"] {
			if err := m.Subscribe(f); err != nil {
				return err
			}
		}
		if err := out.WriteText(ctx, "ready"); err != nil {
			return err
		}
		var opts []topics.PublishOption
		if s.Value.Get("self") != "" {
			opts = append(opts, topics.ToSelf())
		}
		for msg := range in.Messages(0) {
			if err := m.Publish(ctx, s.Value.Get("pub"), msg, opts...); err != nil {
				return err
			}
		}
		return in.Err()
	}
	return serveNode(t, handler, func(r *http.Request) url.Values { return r.URL.Query() })
}

// nodesDial connects to a nodesServe URL and waits for "ready"; it
// returns an error rather than failing, for use in goroutines.
func nodesDial(base string, q url.Values) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: guard}
	ws, resp, err := d.Dial(base+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	_ = ws.SetReadDeadline(time.Now().Add(guard))
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "ready" {
		_ = ws.Close()
		return nil, fmt.Errorf("handshake message %q, %v", msg, err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	return ws, nil
}

// nodesClient records every message a WebSocket client receives.
type nodesClient struct {
	ws   *websocket.Conn
	mu   sync.Mutex
	got  []string
	done chan struct{}
}

func nodesJoin(t *testing.T, base string, q url.Values) *nodesClient {
	t.Helper()
	ws, err := nodesDial(base, q)
	if err != nil {
		t.Fatal(err)
	}
	c := &nodesClient{ws: ws, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.got = append(c.got, string(msg))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ws.Close()
		<-c.done
	})
	return c
}

func (c *nodesClient) messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// nodesServerSubs returns the subjects the NATS server holds for nc's
// connection, sorted.
func nodesServerSubs(t *testing.T, ns *server.Server, nc *nats.Conn) []string {
	t.Helper()
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

// TestNodesCornerSiblingsToSelfOrderExactlyOnce: three publishers, two on
// sibling hubs sharing one Broker (one NATS connection, NoEcho) and one on
// another node, interleave their messages to one topic. Every member with
// a matching filter, on every hub, gets each message once (however many
// of its filters overlap) and in each publisher's order; a publisher gets
// its own messages once with ToSelf and never without, whether its
// siblings' publishes come from the Broker or from NATS.
func TestNodesCornerSiblingsToSelfOrderExactlyOnce(t *testing.T) {
	for _, echo := range []bool{false, true} {
		t.Run(fmt.Sprintf("echo=%v", echo), func(t *testing.T) { nodesSiblings(t, echo) })
	}
}

// nodesSiblings runs TestNodesCornerSiblingsToSelfOrderExactlyOnce; with
// echo, the siblings' Broker is on a connection without NoEcho, so that
// they get each other's publishes from NATS instead.
func nodesSiblings(t *testing.T, echo bool) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	_, brA := connectBroker(t, ns.ClientURL())
	if echo {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		brA = natsbroker.New(nc, &natsbroker.Options{Logger: quiet})
	}
	_, brB := connectBroker(t, ns.ClientURL())
	newHub := func(b *natsbroker.Broker) *topics.Hub {
		h, err := topics.NewHub(&topics.Options{Broker: b, Logger: quiet, Limits: topics.Limits{MaxMessages: 4096}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		return h
	}
	urls := []string{nodesServe(t, newHub(brA)), nodesServe(t, newHub(brA)), nodesServe(t, newHub(brB))}
	q := func(self bool, filters ...string) url.Values {
		v := url.Values{"sub": filters, "pub": {"t"}}
		if self {
			v.Set("self", "1")
		}
		return v
	}
	pubs := []*nodesClient{
		nodesJoin(t, urls[0], q(true, "t")),           // P0: first sibling, ToSelf
		nodesJoin(t, urls[1], q(false, "t/#", "+")),   // P1: second sibling, no ToSelf
		nodesJoin(t, urls[2], q(true, "#", "t", "+")), // P2: other node, ToSelf
	}
	readers := []*nodesClient{
		nodesJoin(t, urls[0], q(false, "t", "t/#", "+")),
		nodesJoin(t, urls[1], q(false, "#", "t")),
		nodesJoin(t, urls[2], q(false, "t")),
	}
	const n = 40
	for i := 1; i <= n; i++ {
		for p, c := range pubs {
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("P%d/%d", p, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// want[c][p]: whether client c gets publisher p's messages.
	type who struct {
		name string
		c    *nodesClient
		from [3]bool
	}
	all := []who{
		{"P0 (ToSelf)", pubs[0], [3]bool{true, true, true}},
		{"P1 (no ToSelf)", pubs[1], [3]bool{true, false, true}},
		{"P2 (ToSelf, other node)", pubs[2], [3]bool{true, true, true}},
		{"reader on hub 0", readers[0], [3]bool{true, true, true}},
		{"reader on sibling hub 1", readers[1], [3]bool{true, true, true}},
		{"reader on the other node", readers[2], [3]bool{true, true, true}},
	}
	for _, w := range all {
		want := 0
		for _, f := range w.from {
			if f {
				want += n
			}
		}
		waitFor(t, w.name+" gets its messages", guard, func() bool { return len(w.c.messages()) >= want })
	}
	time.Sleep(100 * time.Millisecond) // time for a message too many
	for _, w := range all {
		last := [3]int{}
		count := [3]int{}
		for _, m := range w.c.messages() {
			var p, i int
			if _, err := fmt.Sscanf(m, "P%d/%d", &p, &i); err != nil || p < 0 || p > 2 {
				t.Fatalf("%s got %q", w.name, m)
			}
			if i <= last[p] {
				t.Errorf("%s: from P%d, %d after %d", w.name, p, i, last[p])
			}
			last[p] = i
			count[p]++
		}
		for p := range 3 {
			want := 0
			if w.from[p] {
				want = n
			}
			if count[p] != want {
				t.Errorf("%s got %d messages from P%d, want %d", w.name, count[p], p, want)
			}
		}
	}
	if la, lb := brA.Losses(), brB.Losses(); la.Total() != 0 || lb.Total() != 0 {
		t.Errorf("losses counted without loss: A %+v, B %+v", la, lb)
	}
}

// TestNodesCornerBehindCountedWhenSubscriptionEnds: Options.Pending says
// that when a hub falls Pending behind, "NATS drops further messages for
// the node: they are counted (Losses.Behind and Missing, and DropLost in
// the hub) and logged". Missing cannot see a gap across a change of
// subscriptions (a documented blind spot), but Behind counts what NATS
// dropped: it must not depend on the subscription still being there a
// second later.
func TestNodesCornerBehindCountedWhenSubscriptionEnds(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	a, b, gb := behindNodes(t, ns.ClientURL())
	ws, m := b.join(t, "", "a", "b")
	publish(t, a.hub, "b", "b1")
	select {
	case <-gb.entered:
	case <-time.After(guard):
		t.Fatal("b1 never reached B's hub")
	}
	// a1..a4 fill the queue of 4, NATS drops a5..a9.
	publish(t, a.hub, "a", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9")
	flush(t, a.nc, b.nc)
	if err := m.Unsubscribe("a"); err != nil {
		t.Fatal(err)
	}
	close(gb.release)
	publish(t, a.hub, "b", "b2")
	expect(t, ws, "b1", "b2")
	time.Sleep(1100 * time.Millisecond) // a report from NATS's counters
	if l := b.broker.Losses(); l.Behind != 5 {
		t.Errorf("NATS dropped 5 messages for B; Losses %+v", l)
	}
	if !strings.Contains(b.logs.String(), "NATS dropped messages for this node") {
		t.Errorf("no log line about falling behind:\n%s", b.logs.String())
	}
}

// TestNodesCornerLiteralNATSCharactersInFilters: filters whose levels hold
// what NATS treats specially ('*', '>', '.', spaces, the escape mark) are
// literal topics levels, not NATS wildcards or token separators: across
// nodes each gets exactly the topics topics.Match gives it.
func TestNodesCornerLiteralNATSCharactersInFilters(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	_, brA := connectBroker(t, ns.ClientURL())
	_, brB := connectBroker(t, ns.ClientURL())
	filters := []string{"*/x", "a/>", "a.b", "a b/+", "~/+", "~fg", "a/*", ">", "*", "x/+/*", "A/#", "\t/+"}
	topicList := []string{
		"*/x", "a/x", "b/x", "a/>", "a/b/c", "a/b", "a.b", "a", "b", "a b/c", "a/b/c/d",
		"~/c", "~", "~fg", "a/*", "a/y", ">", "*", "x/y/*", "x/y/z", "A", "a/B", "A/b", "\t/q", " /q",
	}
	type got struct{ filter, topic string }
	recv := make(chan got, 1024)
	for _, f := range filters {
		l, err := brB.Open(func(_ context.Context, p topics.Publication) { recv <- got{f, p.Topic} })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		if err := l.Subscribe(f); err != nil {
			t.Fatalf("subscribe %q: %v", f, err)
		}
	}
	pub, err := brA.Open(func(context.Context, topics.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	want := map[got]int{}
	total := 0
	for _, topic := range topicList {
		for _, f := range filters {
			if topics.Match(f, topic) {
				want[got{f, topic}]++
				total++
			}
		}
		if err := pub.Publish(context.Background(), topics.Publication{Topic: topic, Message: wsconn.Prepare(messages.Text(topic))}); err != nil {
			t.Fatalf("publish %q: %v", topic, err)
		}
	}
	seen := map[got]int{}
	deadline := time.After(guard)
	for n := 0; n < total; n++ {
		select {
		case g := <-recv:
			seen[g]++
		case <-deadline:
			t.Fatalf("got %d deliveries of %d", n, total)
		}
	}
	time.Sleep(100 * time.Millisecond)
	for len(recv) > 0 {
		seen[<-recv]++
	}
	for k, n := range seen {
		if want[k] != n {
			t.Errorf("filter %q got topic %q %d times, want %d", k.filter, k.topic, n, want[k])
		}
	}
	for k, n := range want {
		if seen[k] != n {
			t.Errorf("filter %q got topic %q %d times, want %d", k.filter, k.topic, seen[k], n)
		}
	}
}

// TestNodesCornerInterestAfterServerRestart: the subscriptions a node holds
// on the NATS server follow its members' filters exactly, also when members
// leave and join while the server is down: after it comes back (a new
// server on the same port), it holds the subjects of the filters that
// still have members and no others, and traffic follows.
func TestNodesCornerInterestAfterServerRestart(t *testing.T) {
	ns := startNATS(t, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	defer func() { stopNATS(ns) }()
	a := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
	b := startPNode(t, ns.ClientURL(), pnodeOptions{})
	first, _ := b.join(t, "", "a/#", "b")
	keep, _ := b.join(t, "", "b")
	if got, want := nodesServerSubs(t, ns, b.nc), []string{"colibri.topics.a", "colibri.topics.a.>", "colibri.topics.b"}; !slices.Equal(got, want) {
		t.Fatalf("server holds %q, want %q", got, want)
	}

	stopNATS(ns)
	waitFor(t, "B notices", guard, func() bool { return !b.nc.IsConnected() })
	_ = first.Close()
	waitFor(t, "the first member leaves", guard, func() bool { return b.nc.NumSubscriptions() == 1 })
	late, _ := b.join(t, "", "c/+")
	if n := b.nc.NumSubscriptions(); n != 2 {
		t.Fatalf("%d subscriptions on B's connection, want 2", n)
	}

	ns = startNATS(t, port)
	waitFor(t, "both reconnect", guard, func() bool { return a.nc.IsConnected() && b.nc.IsConnected() })
	flush(t, a.nc, b.nc)
	if got, want := nodesServerSubs(t, ns, b.nc), []string{"colibri.topics.b", "colibri.topics.c.*"}; !slices.Equal(got, want) {
		t.Fatalf("after the restart the server holds %q, want %q", got, want)
	}
	in := b.nc.Stats().InMsgs
	publish(t, a.hub, "a/x", "ax")
	publish(t, a.hub, "c/y", "cy")
	publish(t, a.hub, "b", "bm")
	expect(t, late, "cy")
	expect(t, keep, "bm")
	if got := b.nc.Stats().InMsgs - in; got != 2 {
		t.Errorf("B received %d messages from NATS, want 2 (not a/x)", got)
	}
}

// TestNodesCornerInterestUnderConcurrentJoinAndLeave: members with
// overlapping filters join and leave concurrently, each leaving as soon as
// it is subscribed; once they are gone the node holds on NATS exactly the
// subscriptions of the member that stayed, and no traffic for the others'
// filters reaches it.
func TestNodesCornerInterestUnderConcurrentJoinAndLeave(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	a := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
	b := startPNode(t, ns.ClientURL(), pnodeOptions{noServe: true})
	base := nodesServe(t, b.hub)
	keeper := nodesJoin(t, base, url.Values{"sub": {"r/#"}})
	sets := [][]string{{"r/#", "q/+"}, {"r/x", "q/+"}, {"+/x", "r/#"}, {"q/+"}}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for round := range 3 {
		for i := range 8 {
			wg.Go(func() {
				ws, err := nodesDial(base, url.Values{"sub": sets[(round+i)%len(sets)]})
				if err != nil {
					errs <- err
					return
				}
				_ = ws.Close()
			})
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "the members leave", guard, func() bool { return b.hub.Stats().Members == 1 })
	if n := b.nc.NumSubscriptions(); n != 2 {
		t.Errorf("%d subscriptions on B's connection, want 2", n)
	}
	flush(t, b.nc)
	if got, want := nodesServerSubs(t, ns, b.nc), []string{"colibri.topics.r", "colibri.topics.r.>"}; !slices.Equal(got, want) {
		t.Errorf("server holds %q, want %q", got, want)
	}
	in := b.nc.Stats().InMsgs
	publish(t, a.hub, "q/x", "qx")
	publish(t, a.hub, "r/x", "rx")
	waitFor(t, "the keeper gets r/x", guard, func() bool { return len(keeper.messages()) == 1 })
	if got := keeper.messages(); got[0] != "rx" {
		t.Errorf("keeper got %q", got)
	}
	if got := b.nc.Stats().InMsgs - in; got != 1 {
		t.Errorf("B received %d messages from NATS, want 1", got)
	}
}

// TestNodesCornerLinkCloseWithMessagesInFlight: topics.Link's Close:
// "deliver is not called after Close returns", here while a remote node
// and a sibling hub on the same Broker keep publishing to it, whether the
// NATS connection is still open or was closed first; no goroutine of the
// links outlives them.
func TestNodesCornerLinkCloseWithMessagesInFlight(t *testing.T) {
	for _, connFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("connection closed first=%v", connFirst), func(t *testing.T) {
			ns := startNATS(t, -1)
			defer stopNATS(ns)
			quietErrs := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
			remoteNC, remote := connectBroker(t, ns.ClientURL(), quietErrs)
			nc, shared := connectBroker(t, ns.ClientURL(), quietErrs)
			before := goleak.IgnoreCurrent()

			var closed atomic.Bool
			var late, delivered atomic.Int64
			target, err := shared.Open(func(context.Context, topics.Publication) {
				if closed.Load() {
					late.Add(1)
				}
				delivered.Add(1)
				time.Sleep(100 * time.Microsecond) // a backlog builds up
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := target.Subscribe("t"); err != nil {
				t.Fatal(err)
			}
			sibling, err := shared.Open(func(context.Context, topics.Publication) {})
			if err != nil {
				t.Fatal(err)
			}
			far, err := remote.Open(func(context.Context, topics.Publication) {})
			if err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for _, l := range []topics.Link{sibling, far} {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						_ = l.Publish(context.Background(), publication("t"))
						time.Sleep(20 * time.Microsecond)
					}
				})
			}
			waitFor(t, "messages flow from both", guard, func() bool { return delivered.Load() > 200 })
			if connFirst {
				nc.Close()
			}
			done := make(chan struct{})
			go func() {
				_ = target.Close()
				closed.Store(true)
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not return")
			}
			time.Sleep(50 * time.Millisecond)
			close(stop)
			wg.Wait()
			if n := late.Load(); n != 0 {
				t.Errorf("deliver called %d times after Close returned", n)
			}
			_ = sibling.Close()
			_ = far.Close()
			nc.Close()
			remoteNC.Close()
			goleak.VerifyNone(t, before)
		})
	}
}
