package observe_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

const (
	roomRoute = "/ws/room/{name}"
	slowRoute = "/ws/slow"
	// A W3C traceparent sent with ann's upgrade request.
	traceID     = "0af7651916cd43dd8448eb211c80319c"
	parentID    = "b7ad6b7169203331"
	traceparent = "00-" + traceID + "-" + parentID + "-01"
)

// chatServer is a router with two ws routes sharing a topics hub: the
// room route echoes every message and, for "big", publishes a message too
// large for its members' queues; the slow route only subscribes to
// "slow", and hands its member to the test.
type chatServer struct {
	r     *router.Router
	hub   *topics.Hub
	clock *wstest.Clock
	slow  chan *topics.Member
	logs  *testlog.Buffer
}

func newChatServer(t *testing.T, h *harness) *chatServer {
	t.Helper()
	s := &chatServer{clock: wstest.NewClock(), slow: make(chan *topics.Member, 1), logs: &testlog.Buffer{}}
	hub, err := topics.NewHub(&topics.Options{OnDrop: h.obs.Dropped, Policy: topics.DropNewest})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Close() })
	s.hub = hub
	logger := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s.r = router.New(
		router.WithConfig(wsconn.Config{Logger: logger, Clock: s.clock, PingInterval: 30 * time.Second, KeepRequest: true}),
		router.WithObserver(h.obs))
	router.WS(s.r, roomRoute, needUser, s.room)
	router.WS(s.r, slowRoute, nil, s.slowReader)
	return s
}

func needUser(r *http.Request) (string, router.Decision) {
	user := r.URL.Query().Get("user")
	if user == "" {
		return "", router.Reject(http.StatusBadRequest, nil, "user required")
	}
	return user, router.Upgrade(nil)
}

var big = messages.Message{Kind: messages.KindText, Payload: bytes.Repeat([]byte("x"), 200)}

func (s *chatServer) room(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *wsconn.Session[string]) error {
	topic := "room/" + sess.Request().PathValue("name")
	m := s.hub.Join(sess.Conn, &topics.MemberOptions{Limits: topics.Limits{MaxBytes: 128}})
	if err := m.Subscribe(topic); err != nil {
		return err
	}
	for msg := range in.Messages(0) {
		if msg.Kind == messages.KindText && msg.Text() == "big" {
			if err := s.hub.Publish(ctx, topic, big); err != nil {
				return err
			}
			if err := out.WriteText(ctx, "published"); err != nil {
				return err
			}
			continue
		}
		if err := out.WriteMessage(ctx, msg); err != nil {
			return err
		}
	}
	return in.Err()
}

func (s *chatServer) slowReader(ctx context.Context, in *wsconn.Inbound, _ *wsconn.Outbound, sess *wsconn.Session[struct{}]) error {
	m := s.hub.Join(sess.Conn, &topics.MemberOptions{Limits: topics.Limits{MaxMessages: 4, MaxBytes: 1 << 20}})
	if err := m.Subscribe("slow"); err != nil {
		return err
	}
	s.slow <- m
	for range in.Messages(0) {
	}
	return in.Err()
}

// TestScriptedSession runs connections through a router over loopback:
// ann connects with a trace context, exchanges text and binary messages,
// answers a keep-alive ping, has a message dropped for her queue's size,
// and closes with 4000; a request without a user is refused; bob never
// reads, so his queue fills and drops; carl sends invalid UTF-8. Then it
// checks every figure the observer recorded.
func TestScriptedSession(t *testing.T) {
	h := newHarness(t, observe.Options{})
	s := newChatServer(t, h)
	srv := wstest.NewServer(t, h.obs.Handler(s.r))
	room := attrRoute(roomRoute)
	slow := attrRoute(slowRoute)

	// Refused: no user.
	_, _, err := wsclient.Dial(context.Background(), srv.URL()+"/ws/room/lobby", &wsclient.Options{NetDial: srv.NetDial})
	if he, ok := errors.AsType[*wsclient.HandshakeError](err); !ok || he.StatusCode != http.StatusBadRequest {
		t.Fatalf("dial without user: %v, want a 400 refusal", err)
	}

	ann := srv.Dial(t, "/ws/room/lobby?user=ann", &wsclient.Options{Header: http.Header{"Traceparent": {traceparent}}})
	ann.SendText("hello")
	ann.ExpectText("hello")
	ann.SendBinary([]byte{1, 2, 3})
	ann.ExpectBinary([]byte{1, 2, 3})

	// A keep-alive ping answered 25 ms later, on the test's clock.
	s.clock.Advance(30 * time.Second)
	ping := ann.ExpectPing()
	s.clock.Advance(25 * time.Millisecond)
	ann.SendFrame(frames.Pong(ping))
	ann.SendText("sync")
	ann.ExpectText("sync")

	// 200 bytes do not fit in ann's 128-byte queue: dropped, too large.
	ann.SendText("big")
	ann.ExpectText("published")

	// bob never reads: once the sockets' buffers are full his sender is
	// stuck on a write and his queue holds its limit of 4 messages.
	bob := srv.Dial(t, slowRoute, nil)
	member := <-s.slow
	chunk := messages.Binary(make([]byte, 64<<10))
	frameLen := wsconn.Prepare(chunk).Len()
	fillQueue(t, s.hub, member, chunk)

	m := h.collect(t)
	m.want(t, 1, "colibri.connections.open", room)
	m.want(t, 1, "colibri.connections.open", slow)
	reg, err := h.obs.WatchHub("chat", s.hub)
	if err != nil {
		t.Fatal(err)
	}
	m = h.collect(t)
	m.want(t, 4, "colibri.topics.queue.messages", attrHub("chat"))
	m.want(t, int64(4*frameLen), "colibri.topics.queue.bytes", attrHub("chat"))
	m.want(t, 4, "colibri.topics.queue.longest", attrHub("chat"))
	m.want(t, 2, "colibri.topics.members", attrHub("chat"))
	// The messages in flight when bob hangs up that went to the socket
	// whole count as sent, not as left: see the drops below.
	sentAtFull, _ := m.int64Point(t, "colibri.messages", slow, attrDirection("transmit"), attrKind("binary"))
	// The hub's policy is DropNewest: every drop is labelled with it.
	newest := observe.AttrDropPolicy.String("drop-newest")
	refused, _ := m.int64Point(t, "colibri.topics.drops", slow, attrDropReason("refused"), newest)
	if refused < 1 {
		t.Errorf("drops refused on %s = %d, want at least 1", slowRoute, refused)
	}
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}

	// carl breaks the protocol.
	carl := srv.Dial(t, "/ws/room/lobby?user=carl", nil)
	carl.SendFrame(frames.Text([]byte{0xff}))
	carl.ExpectClose(frames.CloseInvalidPayload, "invalid UTF-8 in text message")

	ann.SendClose(4000, "bye")
	ann.ExpectClose(4000, "bye")
	bob.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Drain ends when bob's connection does, for the peer's reason rather
	// than the shutdown below.
	if err := member.Drain(ctx); !errors.Is(err, topics.ErrLeft) {
		t.Fatalf("drain bob: %v, want ErrLeft", err)
	}
	if _, err := s.r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The router reports an accepted upgrade after the hand-off, on the
	// request's goroutine: wait for those too.
	srv.Close()

	m = h.collect(t)
	m.want(t, 0, "colibri.connections.open", room)
	m.want(t, 0, "colibri.connections.open", slow)

	accepted, refusedOutcome := attrOutcome("accepted"), attrOutcome("refused")
	m.want(t, 2, "colibri.upgrades", room, attrStatus(101), accepted)
	m.want(t, 1, "colibri.upgrades", slow, attrStatus(101), accepted)
	m.want(t, 1, "colibri.upgrades", room, attrStatus(400), refusedOutcome)
	if n, _ := m.histogram(t, "colibri.upgrade.duration", room, accepted); n != 2 {
		t.Errorf("upgrade durations accepted on %s: %d, want 2", roomRoute, n)
	}
	if n, _ := m.histogram(t, "colibri.upgrade.duration", room, refusedOutcome); n != 1 {
		t.Errorf("upgrade durations refused on %s: %d, want 1", roomRoute, n)
	}

	// ann sent hello, [1 2 3], sync and big; she got hello, [1 2 3], sync
	// and published. carl's invalid text counts nowhere.
	in, out := attrDirection("receive"), attrDirection("transmit")
	text, binary := attrKind("text"), attrKind("binary")
	m.want(t, 3, "colibri.messages", room, in, text)
	m.want(t, 12, "colibri.message.payload", room, in, text)
	m.want(t, 1, "colibri.messages", room, in, binary)
	m.want(t, 3, "colibri.message.payload", room, in, binary)
	m.want(t, 3, "colibri.messages", room, out, text)
	m.want(t, 18, "colibri.message.payload", room, out, text)
	m.want(t, 1, "colibri.messages", room, out, binary)
	m.want(t, 3, "colibri.message.payload", room, out, binary)
	sentToBob, _ := m.int64Point(t, "colibri.messages", slow, out, binary)
	payloadToBob, _ := m.int64Point(t, "colibri.message.payload", slow, out, binary)
	if sentToBob < 1 || payloadToBob != sentToBob*int64(len(chunk.Payload)) {
		t.Errorf("to bob: %d messages, %d bytes; want at least one of %d bytes each", sentToBob, payloadToBob, len(chunk.Payload))
	}

	if n, sum := m.histogram(t, "colibri.ping.rtt", room); n != 1 || sum != 0.025 {
		t.Errorf("ping rtt on %s: %d samples summing to %gs, want 1 of 0.025s", roomRoute, n, sum)
	}
	m.want(t, 1, "colibri.protocol_errors", room, attrCloseCode(1007))

	m.want(t, 1, "colibri.topics.drops", room, attrDropReason("too large"), newest)
	m.want(t, refused, "colibri.topics.drops", slow, attrDropReason("refused"), newest)
	m.want(t, 4-(sentToBob-sentAtFull), "colibri.topics.drops", slow, attrDropReason("left"), newest)

	peer, local := attrClosedBy("peer"), attrClosedBy("local")
	m.want(t, 1, "colibri.closes", room, attrCloseCode(4000), peer)
	m.want(t, 1, "colibri.closes", room, attrCloseCode(1007), local)
	m.want(t, 1, "colibri.closes", slow, attrCloseCode(1006), peer)
	if n, _ := m.histogram(t, "colibri.connection.duration", room, peer); n != 1 {
		t.Errorf("durations of %s closed by the peer: %d, want 1", roomRoute, n)
	}
	if n, _ := m.histogram(t, "colibri.connection.duration", slow, peer); n != 1 {
		t.Errorf("durations of %s closed by the peer: %d, want 1", slowRoute, n)
	}

	checkSpans(t, h)

	// The close line, once per connection, with the same facts.
	logs := s.logs.String()
	for _, want := range []string{
		`msg="connection closed" route=/ws/room/{name} conn=`,
		`subprotocol="" compression=none code=4000 reason=bye by=peer duration=30.025s messages_in=4 messages_out=4 bytes_in=`,
		`code=1007 reason="invalid UTF-8 in text message" by=local`,
		`msg="protocol violation" route=/ws/room/{name}`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, `msg="connection closed"`); n != 3 {
		t.Errorf("%d close lines, want 3:\n%s", n, logs)
	}
}

// fillQueue publishes chunk to "slow" until member's queue is full and
// stays full: its sender is stuck on a write to a peer that does not read.
func fillQueue(t *testing.T, hub *topics.Hub, member *topics.Member, chunk messages.Message) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, n := member.Buffered(); n < 4 {
			if err := hub.Publish(context.Background(), "slow", chunk); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if member.Dropped() == 0 {
			// One more than fits, for a drop.
			if err := hub.Publish(context.Background(), "slow", chunk); err != nil {
				t.Fatal(err)
			}
			continue
		}
		// Full for a while: a sender that still wrote would have drained
		// it by now.
		stuck := true
		for range 3 {
			time.Sleep(50 * time.Millisecond)
			_, n := member.Buffered()
			stuck = stuck && n == 4
		}
		if stuck {
			return
		}
	}
	t.Fatal("the slow member's queue never stayed full")
}

func checkSpans(t *testing.T, h *harness) {
	t.Helper()
	upgrades := h.spansNamed("GET " + roomRoute)
	if len(upgrades) != 3 {
		t.Fatalf("%d upgrade spans for %s, want 3 (ann, carl, the refusal)", len(upgrades), roomRoute)
	}
	var annUpgrade trace.SpanContext
	statuses := map[int64]int{}
	for _, s := range upgrades {
		if s.SpanKind() != trace.SpanKindServer {
			t.Errorf("upgrade span kind %v", s.SpanKind())
		}
		status, _ := attr(s, observe.AttrStatus)
		statuses[status.AsInt64()]++
		if s.Parent().TraceID().String() == traceID {
			if s.Parent().SpanID().String() != parentID || s.SpanContext().TraceID().String() != traceID {
				t.Errorf("ann's upgrade span: parent %v, trace %v; want the traceparent's", s.Parent(), s.SpanContext().TraceID())
			}
			annUpgrade = s.SpanContext()
		}
	}
	if statuses[101] != 2 || statuses[400] != 1 {
		t.Errorf("upgrade span statuses %v, want two 101 and one 400", statuses)
	}
	if !annUpgrade.IsValid() {
		t.Fatal("no upgrade span continues ann's trace")
	}

	conns := h.spansNamed("WebSocket " + roomRoute)
	if len(conns) != 2 {
		t.Fatalf("%d connection spans for %s, want 2", len(conns), roomRoute)
	}
	found := 0
	for _, s := range conns {
		code, _ := attr(s, observe.AttrCloseCode)
		switch code.AsInt64() {
		case 4000:
			found++
			if s.SpanContext().TraceID() == annUpgrade.TraceID() || s.Parent().IsValid() {
				t.Errorf("ann's connection span is in the upgrade's trace; want a new one")
			}
			if l := s.Links(); len(l) != 1 || !l[0].SpanContext.Equal(annUpgrade) {
				t.Errorf("ann's connection span links %v, want her upgrade span %v", l, annUpgrade)
			}
			if by, _ := attr(s, observe.AttrClosedBy); by.AsString() != "peer" {
				t.Errorf("ann's close by %q, want peer", by.AsString())
			}
			if n, _ := attr(s, "websocket.messages.received"); n.AsInt64() != 4 {
				t.Errorf("ann's span counts %d messages received, want 4", n.AsInt64())
			}
			if s.Status().Code != codes.Unset {
				t.Errorf("ann's span status %v, want unset", s.Status())
			}
		case 1007:
			found++
			if s.Status().Code != codes.Error {
				t.Errorf("carl's span status %v, want an error", s.Status())
			}
			if ev := s.Events(); len(ev) != 1 || ev[0].Name != "protocol error" {
				t.Errorf("carl's span events %v, want one protocol error", ev)
			}
		}
	}
	if found != 2 {
		t.Errorf("connection spans of ann and carl not found among %d", len(conns))
	}
}

// Attribute shorthands.
func attrRoute(r string) attribute.KeyValue      { return observe.AttrRoute.String(r) }
func attrHub(n string) attribute.KeyValue        { return observe.AttrHub.String(n) }
func attrStatus(s int) attribute.KeyValue        { return observe.AttrStatus.Int(s) }
func attrOutcome(o string) attribute.KeyValue    { return observe.AttrOutcome.String(o) }
func attrDirection(d string) attribute.KeyValue  { return observe.AttrDirection.String(d) }
func attrKind(k string) attribute.KeyValue       { return observe.AttrKind.String(k) }
func attrCloseCode(c int) attribute.KeyValue     { return observe.AttrCloseCode.Int(c) }
func attrClosedBy(b string) attribute.KeyValue   { return observe.AttrClosedBy.String(b) }
func attrDropReason(r string) attribute.KeyValue { return observe.AttrDropReason.String(r) }
