package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvNatsfailOpts shape one application node of these tests.
type rvNatsfailOpts struct {
	nats    []nats.Option // after natsbroker.Connect's and the test's own
	policy  topics.Policy // the hub's
	limits  topics.Limits // the hub's
	noServe bool          // no WebSocket server
}

// rvNatsfailNode is an application node: a hub on its own NATS connection
// (natsbroker.Connect), served by a real app.App on 127.0.0.1 whose ws
// route joins the hub, subscribes to the "sub" query values, says "ready",
// and publishes each message it receives to the "pub" query value.
type rvNatsfailNode struct {
	nc      *nats.Conn
	broker  *natsbroker.Broker
	hub     *topics.Hub
	logs    *testlog.Buffer
	members chan *topics.Member
	url     string

	app     *app.App
	stop    context.CancelFunc
	served  chan error
	stopped bool

	mu    sync.Mutex
	drops map[*topics.Member]map[topics.DropReason]int
	pols  map[topics.DropReason]topics.Policy
}

func rvNatsfailStart(t *testing.T, natsURL string, o rvNatsfailOpts) *rvNatsfailNode {
	t.Helper()
	n := &rvNatsfailNode{
		logs:    &testlog.Buffer{},
		members: make(chan *topics.Member, 16),
		drops:   map[*topics.Member]map[topics.DropReason]int{},
		pols:    map[topics.DropReason]topics.Policy{},
	}
	opts := append([]nats.Option{
		nats.ReconnectWait(20 * time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	}, o.nats...)
	var err error
	n.nc, err = natsbroker.Connect(natsURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.nc.Close)
	n.broker = natsbroker.New(n.nc, &natsbroker.Options{Logger: slog.New(slog.NewTextHandler(n.logs, nil))})
	n.hub, err = topics.NewHub(&topics.Options{
		Broker: n.broker, Policy: o.policy, Limits: o.limits, Logger: quiet,
		OnDrop: func(d topics.Drop) {
			n.mu.Lock()
			defer n.mu.Unlock()
			if n.drops[d.Member] == nil {
				n.drops[d.Member] = map[topics.DropReason]int{}
			}
			n.drops[d.Member][d.Reason] += d.Count
			n.pols[d.Reason] = d.Policy
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.hub.Close() })
	if o.noServe {
		return n
	}
	hub := n.hub
	r := router.New()
	router.WS(r, "/ws", func(req *http.Request) (url.Values, router.Decision) {
		return req.URL.Query(), router.Upgrade(nil)
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[url.Values]) error {
		var mo *topics.MemberOptions
		if v := s.Value.Get("max"); v != "" {
			max, _ := strconv.Atoi(v)
			mo = &topics.MemberOptions{Limits: topics.Limits{MaxMessages: max, MaxBytes: 64 << 20}}
		}
		m := hub.Join(s.Conn, mo)
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
			if err := m.Publish(ctx, s.Value.Get("pub"), msg); err != nil {
				return err
			}
		}
		return in.Err()
	})
	n.app = app.New(r, app.Config{NoSignals: true, Logger: quiet, ShutdownTimeout: 5 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stop, n.served = cancel, make(chan error, 1)
	go func() { n.served <- n.app.Serve(ctx, ln) }()
	n.url = "ws://" + ln.Addr().String() + "/ws"
	t.Cleanup(func() { _ = n.shutdown(t) })
	return n
}

// shutdown stops the node's app gracefully and returns what Serve
// returned.
func (n *rvNatsfailNode) shutdown(t *testing.T) error {
	t.Helper()
	if n.stopped {
		return nil
	}
	n.stopped = true
	n.stop()
	select {
	case err := <-n.served:
		return err
	case <-time.After(guard):
		t.Fatal("app.Serve did not return")
		return nil
	}
}

// dropsOf returns m's drops by reason.
func (n *rvNatsfailNode) dropsOf(m *topics.Member) map[topics.DropReason]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[topics.DropReason]int{}
	for r, c := range n.drops[m] {
		out[r] = c
	}
	return out
}

// join connects a gorilla client subscribed to filters, with extra query
// values; it returns once the server said "ready".
func (n *rvNatsfailNode) join(t *testing.T, q url.Values, filters ...string) (*websocket.Conn, *topics.Member) {
	t.Helper()
	if q == nil {
		q = url.Values{}
	}
	q["sub"] = filters
	ws, _, err := websocket.DefaultDialer.Dial(n.url+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(guard))
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "ready" {
		t.Fatalf("first message %q, %v", msg, err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	select {
	case m := <-n.members:
		return ws, m
	case <-time.After(guard):
		t.Fatal("no member")
	}
	return nil, nil
}

// rvNatsfailReader reads a gorilla connection until it ends, keeping the
// messages and the close error.
type rvNatsfailReader struct {
	mu   sync.Mutex
	msgs []string
	err  error
	done chan struct{}
}

func rvNatsfailRead(ws *websocket.Conn) *rvNatsfailReader {
	r := &rvNatsfailReader{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			_ = ws.SetReadDeadline(time.Now().Add(3 * guard))
			_, msg, err := ws.ReadMessage()
			r.mu.Lock()
			if err != nil {
				r.err = err
				r.mu.Unlock()
				return
			}
			r.msgs = append(r.msgs, string(msg))
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *rvNatsfailReader) has(msg string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m == msg {
			return true
		}
	}
	return false
}

func (r *rvNatsfailReader) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// wait waits for the connection to end and returns its close code (0
// when it ended without a CLOSE).
func (r *rvNatsfailReader) wait(t *testing.T) (code int, text string) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(guard):
		t.Fatal("the connection did not end")
	}
	var ce *websocket.CloseError
	if errors.As(r.err, &ce) {
		return ce.Code, ce.Text
	}
	return 0, fmt.Sprint(r.err)
}

// rvNatsfailSeqs checks that the messages of each publisher ("<pub>/<n>")
// arrive with strictly increasing numbers and returns how many came from
// each.
func rvNatsfailSeqs(t *testing.T, who string, msgs []string) map[string]int {
	t.Helper()
	last := map[string]int{}
	count := map[string]int{}
	for _, m := range msgs {
		pub, num, ok := strings.Cut(m, "/")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		if n <= last[pub] {
			t.Errorf("%s: from %s, %d after %d", who, pub, n, last[pub])
		}
		last[pub] = n
		count[pub]++
	}
	return count
}

func rvNatsfailText(s string) messages.Message { return messages.Text(s) }
