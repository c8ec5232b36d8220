package natsbroker_test

// Corners where NATS-connected hubs meet the lifecycle of their members'
// connections, of the application (app.Shutdown) and of the hubs
// themselves (Hub.Close), on an embedded NATS server. Block members hold
// up the broker's receiving goroutine or a sibling hub's publisher; the
// tests check what lets them go. Helpers come from multinode_test.go
// (startNATS, stopNATS, waitFor), outage_test.go (connectBroker) and
// helpers_test.go (blockHubs).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// cornerBig is larger than the socket buffers of a cornerServer's
// connection and its client can hold, and below NATS's 1 MB payload
// limit: a client that stops reading in its middle keeps it in flight.
const cornerBig = 512 << 10

func cornerBigText(name string) messages.Message {
	return messages.Text(name + ":" + strings.Repeat("x", cornerBig-len(name)-1))
}

// cornerServer is an app.App on 127.0.0.1 with 32 KiB send buffers whose
// connections join hub with opts, subscribe to filters and hand their
// member to the test.
type cornerServer struct {
	app    *app.App
	url    string
	joined chan *topics.Member
}

func serveCorner(t *testing.T, hub *topics.Hub, opts *topics.MemberOptions, filters ...string) *cornerServer {
	t.Helper()
	cs := &cornerServer{joined: make(chan *topics.Member, 8)}
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet, CloseTimeout: time.Second, WriteTimeout: 5 * time.Second}))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		m := hub.Join(s.Conn, opts)
		for _, f := range filters {
			if err := m.Subscribe(f); err != nil {
				return err
			}
		}
		cs.joined <- m
		for range in.Messages(0) {
		}
		return in.Err()
	})
	cs.app = app.New(r, app.Config{Logger: quiet, NoSignals: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs.url = "ws://" + ln.Addr().String() + "/ws"
	srv := &http.Server{
		Handler: cs.app,
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				_ = c.(*net.TCPConn).SetWriteBuffer(32 << 10)
			}
		},
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, _ = cs.app.Shutdown(ctx)
		_ = srv.Close()
		<-served
	})
	return cs
}

func (cs *cornerServer) dial(t *testing.T) (*websocket.Conn, *topics.Member) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	c, resp, err := d.Dial(cs.url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { _ = c.Close() })
	select {
	case m := <-cs.joined:
		return c, m
	case <-time.After(3 * time.Second):
		t.Fatal("the connection did not join the hub")
		return nil, nil
	}
}

// cornerStall waits until the next message to c has begun to arrive and
// returns the rest of it, unread.
func cornerStall(t *testing.T, c *websocket.Conn) io.Reader {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, r, err := c.NextReader()
	if err != nil {
		t.Fatalf("next message: %v", err)
	}
	return r
}

// cornerName reads the rest of a message and returns what comes before
// its first colon.
func cornerName(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	name, _, _ := strings.Cut(string(b), ":")
	return name
}

// cornerInStack waits until some goroutine's stack holds fn.
func cornerInStack(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	waitFor(t, fn+" runs", 3*time.Second, func() bool {
		n := runtime.Stack(buf, true)
		return bytes.Contains(buf[:n], []byte(fn))
	})
}

// cornerDrops counts what OnDrop reports, by reason.
type cornerDrops struct {
	mu sync.Mutex
	n  map[topics.DropReason]int
}

func (d *cornerDrops) add(x topics.Drop) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[topics.DropReason]int{}
	}
	d.n[x.Reason] += x.Count
}

func (d *cornerDrops) get(r topics.DropReason) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[r]
}

func (d *cornerDrops) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := 0
	for _, n := range d.n {
		t += n
	}
	return t
}

// TestTopicsCornerNATSSiblingBlockHonoursThePublishersContext: Hub.Publish
// waits only for Block members, "bounded by its timeout and by ctx", and
// docs/topics.md says hubs sharing one Broker "get each other's publishes
// in the publisher's goroutine, which a slow member there delays
// instead". Two hubs on one natsbroker.Broker: a publisher on the first
// whose context ends after 100 ms must not be held by a Block(2s) member
// of the second for the whole two seconds.
func TestTopicsCornerNATSSiblingBlockHonoursThePublishersContext(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	_, b := connectBroker(t, ns.ClientURL())
	pubHub, subHub, drops := blockHubs(t, b, b)
	cs := serveCorner(t, subHub, &topics.MemberOptions{Policy: topics.Block(2 * time.Second)}, "t")
	c, _ := cs.dial(t)
	if err := pubHub.Publish(context.Background(), "t", cornerBigText("0")); err != nil {
		t.Fatal(err)
	}
	rest := cornerStall(t, c) // "0" in flight: the member is full

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := pubHub.Publish(ctx, "t", messages.Text("1"))
	took := time.Since(start)
	if err != nil {
		t.Errorf("Publish: %v", err)
	}
	if took > time.Second {
		t.Errorf("Publish with a 100 ms context returned after %v: the sibling hub's Block member held it for its whole timeout (2 s)", took.Round(10*time.Millisecond))
	}
	if got := cornerName(t, rest); got != "0" {
		t.Fatalf("got %q", got)
	}
	if n := drops.get(topics.DropTimedOut); n != 1 {
		t.Errorf("DropTimedOut %d, want 1", n)
	}
}

// TestTopicsCornerNATSHubCloseReleasesBrokerDeliveryWaitingOnBlock: the
// broker's receiving goroutine delivers a remote publish to a Block member
// that is full and waits for it. Hub.Close must not hang on it (the Link's
// deliver context "ends when the Link closes"); the message it waited with
// is counted once; the node's NATS subscriptions end with the hub although
// its member is still joined; the member still gets what it had in flight
// ("Members stay joined until their connections end and send what they had
// queued") and nothing published afterwards; and the member later leaves
// cleanly.
func TestTopicsCornerNATSHubCloseReleasesBrokerDeliveryWaitingOnBlock(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	_, pb := connectBroker(t, ns.ClientURL())
	snc, sb := connectBroker(t, ns.ClientURL())
	pubHub, hub, drops := blockHubs(t, pb, sb)
	cs := serveCorner(t, hub, &topics.MemberOptions{Policy: topics.Block(10 * time.Second)}, "t")
	c, m := cs.dial(t)

	if err := pubHub.Publish(context.Background(), "t", cornerBigText("0")); err != nil {
		t.Fatal(err)
	}
	rest := cornerStall(t, c)
	if err := pubHub.Publish(context.Background(), "t", messages.Text("1")); err != nil {
		t.Fatal(err)
	}
	cornerInStack(t, "topics.(*Member).await") // the receiving goroutine waits for room

	closed := make(chan error, 1)
	go func() { closed <- hub.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Hub.Close hangs on the broker's delivery waiting for a Block member")
	}
	if n := snc.NumSubscriptions(); n != 0 {
		t.Errorf("%d NATS subscriptions after Hub.Close", n)
	}
	if err := m.Subscribe("u"); !errors.Is(err, topics.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	if err := pubHub.Publish(context.Background(), "t", messages.Text("2")); err != nil {
		t.Fatal(err)
	}
	if got := cornerName(t, rest); got != "0" {
		t.Fatalf("got %q, want 0", got)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, p, err := c.ReadMessage(); err == nil {
		t.Errorf("after the hub closed the member got %.20q", p)
	}
	if n := m.Dropped(); n != 1 || drops.total() != 1 {
		t.Errorf("the member dropped %d (OnDrop %v), want 1: the message the broker waited with", n, drops.n)
	}
	_ = c.Close()
	waitFor(t, "the member leaves", 3*time.Second, func() bool { return hub.Stats().Members == 0 })
	if n := m.Dropped(); n != 1 {
		t.Errorf("the member dropped %d in all, want 1", n)
	}
}

// TestTopicsCornerNATSShutdownReleasesBrokerDeliveryWaitingOnBlock: the
// broker's receiving goroutine waits for a full Block member of this node
// when the application serving that member shuts down. The member leaves,
// the waiting message is reported once as DropLeft ("a Block publisher
// still waiting for room reports its message as DropLeft too"), the
// client gets the message being written and then 1001, and the
// receiving goroutine goes on at once: another member of the node, served
// by an app that keeps running, gets the waiting message and the next one
// long before the Block timeout.
func TestTopicsCornerNATSShutdownReleasesBrokerDeliveryWaitingOnBlock(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	_, pb := connectBroker(t, ns.ClientURL())
	_, sb := connectBroker(t, ns.ClientURL())
	pubHub, hub, drops := blockHubs(t, pb, sb)
	slowApp := serveCorner(t, hub, &topics.MemberOptions{Policy: topics.Block(10 * time.Second)}, "t")
	fastApp := serveCorner(t, hub, &topics.MemberOptions{Policy: topics.DropNewest, Limits: topics.Limits{MaxMessages: 16}}, "t")
	slow, slowM := slowApp.dial(t)
	fast, fastM := fastApp.dial(t)

	if err := pubHub.Publish(context.Background(), "t", cornerBigText("0")); err != nil {
		t.Fatal(err)
	}
	rest := cornerStall(t, slow)
	if got := cornerName(t, cornerStall(t, fast)); got != "0" {
		t.Fatalf("fast client got %q", got)
	}
	if err := pubHub.Publish(context.Background(), "t", messages.Text("1")); err != nil {
		t.Fatal(err)
	}
	cornerInStack(t, "topics.(*Member).await")

	start := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := slowApp.app.Shutdown(ctx)
		done <- err
	}()
	if err := pubHub.Publish(context.Background(), "t", messages.Text("2")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1", "2"} {
		_ = fast.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, p, err := fast.ReadMessage()
		if err != nil || string(p) != want {
			t.Fatalf("fast client: %q, %v; want %q", p, err, want)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the node's other member waited %v: the broker's goroutine stayed with the member that left", took)
	}
	if got := cornerName(t, rest); got != "0" {
		t.Fatalf("slow client got %q", got)
	}
	_ = slow.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, _, err := slow.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1001 {
		t.Fatalf("slow client after its message: %v, want 1001", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	waitFor(t, "the member's drops are reported", 3*time.Second, func() bool { return drops.total() >= 1 })
	if slowM.Dropped() != 1 || drops.get(topics.DropLeft) != 1 || drops.total() != 1 || fastM.Dropped() != 0 {
		t.Errorf("slow member dropped %d, fast %d; OnDrop %v; want one DropLeft", slowM.Dropped(), fastM.Dropped(), drops.n)
	}
}
