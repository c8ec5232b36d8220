package observe_test

// Adversarial tests of package observe against docs/observability.md:
// exact counts under concurrency and protocol errors, drops counted with
// their Count, and the upgrade span's status.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// Many connections at once, each sending text and binary messages: every
// message, byte, upgrade, close and lifetime is counted exactly once, and
// colibri.connections.open returns to 0.
func TestAdvConcurrentConnectionsCountedExactly(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	router.WS(r, "/ws/echo/{n}", nil, echo)
	srv := wstest.NewMemoryServer(t, r)
	const conns, msgs = 6, 15
	t.Run("clients", func(t *testing.T) {
		for i := range conns {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				c := srv.Dial(t, fmt.Sprintf("/ws/echo/%d", i), nil)
				for j := range msgs {
					c.SendText(strings.Repeat("t", j))
					c.ExpectText(strings.Repeat("t", j))
					c.SendBinary(make([]byte, 2*j))
					c.ExpectBinary(make([]byte, 2*j))
				}
				c.Close()
			})
		}
	})
	shutdown(t, r)
	m := h.collect(t)
	route := attrRoute("/ws/echo/{n}")
	textBytes, binBytes := int64(0), int64(0)
	for j := range msgs {
		textBytes += int64(j)
		binBytes += int64(2 * j)
	}
	for _, dir := range []string{"receive", "transmit"} {
		m.want(t, conns*msgs, "colibri.messages", route, attrDirection(dir), attrKind("text"))
		m.want(t, conns*msgs, "colibri.messages", route, attrDirection(dir), attrKind("binary"))
		m.want(t, conns*textBytes, "colibri.message.payload", route, attrDirection(dir), attrKind("text"))
		m.want(t, conns*binBytes, "colibri.message.payload", route, attrDirection(dir), attrKind("binary"))
	}
	m.want(t, 0, "colibri.connections.open", route)
	m.want(t, conns, "colibri.upgrades", route, attrStatus(101), attrOutcome("accepted"))
	m.want(t, conns, "colibri.closes", route, attrCloseCode(1000), attrClosedBy("peer"))
	if n, _ := m.histogram(t, "colibri.connection.duration", route, attrClosedBy("peer")); n != conns {
		t.Errorf("%d connection durations, want %d", n, conns)
	}
	if n, _ := m.histogram(t, "colibri.upgrade.duration", route, attrOutcome("accepted")); n != conns {
		t.Errorf("%d upgrade durations, want %d", n, conns)
	}
}

// Protocol errors (docs/observability.md: colibri.protocol_errors "peers
// failed for breaking RFC 6455, by the code they got (1002, 1007,
// 1009)"): each failed connection counts once under its code, its close
// is counted as local with the same code, the message that broke the
// rules is not counted as received, and the span carries a "protocol
// error" event and an error status.
func TestAdvProtocolErrorsCountedOnce(t *testing.T) {
	h := newHarness(t, observe.Options{})
	cfg := quiet
	cfg.MaxMessageSize = 16
	r := router.New(router.WithConfig(cfg), router.WithObserver(h.obs))
	router.WS(r, "/ws/echo", nil, echo)
	srv := wstest.NewMemoryServer(t, h.obs.Handler(r))

	c := srv.Dial(t, "/ws/echo", nil)
	c.SendFrame(frames.Frame{Op: frames.OpText, Payload: []byte("ok \xed")})
	c.SendFrame(frames.Continuation([]byte("\xa0\x80"), true))
	c.ExpectClose(frames.CloseInvalidPayload, "invalid UTF-8 in text message")

	c = srv.Dial(t, "/ws/echo", nil)
	c.SendFrame(frames.Frame{Op: 0x3, Fin: true, Payload: []byte("x")})
	c.ExpectClose(frames.CloseProtocolError, "reserved opcode")

	c = srv.Dial(t, "/ws/echo", nil)
	c.SendFrame(frames.Frame{Op: frames.OpBinary, Payload: make([]byte, 10)})
	c.SendFrame(frames.Continuation(make([]byte, 7), true))
	c.ExpectClose(frames.CloseMessageTooBig, "message too large")

	shutdown(t, r)
	m := h.collect(t)
	route := attrRoute("/ws/echo")
	for _, code := range []int{1002, 1007, 1009} {
		m.want(t, 1, "colibri.protocol_errors", route, attrCloseCode(code))
		m.want(t, 1, "colibri.closes", route, attrCloseCode(code), attrClosedBy("local"))
	}
	m.want(t, 0, "colibri.messages", route, attrDirection("receive"), attrKind("text"))
	m.want(t, 0, "colibri.messages", route, attrDirection("receive"), attrKind("binary"))
	m.want(t, 0, "colibri.connections.open", route)
	spans := h.spansNamed("WebSocket /ws/echo")
	if len(spans) != 3 {
		t.Fatalf("%d connection spans, want 3", len(spans))
	}
	for _, s := range spans {
		code, _ := attr(s, observe.AttrCloseCode)
		var events int
		for _, e := range s.Events() {
			if e.Name == "protocol error" {
				events++
			}
		}
		if events != 1 || s.Status().Code != codes.Error {
			t.Errorf("span closed with %d: %d protocol error events, status %v", code.AsInt64(), events, s.Status())
		}
	}
}

// Dropped (doc: "counts the messages a topics member did not get
// (d.Count, one unless a broker lost several in a row)"), from many
// goroutines at once, without a member (route ""), with each reason.
func TestAdvDroppedConcurrentAndCounted(t *testing.T) {
	h := newHarness(t, observe.Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				h.obs.Dropped(topics.Drop{Reason: topics.DropLost, Count: 3, Policy: topics.DropNewest})
				h.obs.Dropped(topics.Drop{Reason: topics.DropEvicted, Count: 0, Policy: topics.DropOldest})
				h.obs.Dropped(topics.Drop{Reason: topics.DropTimedOut, Count: 1, Policy: topics.Block(1)})
				_ = g + i
			}
		}()
	}
	wg.Wait()
	m := h.collect(t)
	route := attrRoute("")
	policy := observe.AttrDropPolicy
	m.want(t, 8*50*3, "colibri.topics.drops", route, attrDropReason("lost"), policy.String("drop-newest"))
	m.want(t, 8*50, "colibri.topics.drops", route, attrDropReason("evicted"), policy.String("drop-oldest"))
	m.want(t, 8*50, "colibri.topics.drops", route, attrDropReason("timed out"), policy.String("block"))
}

// Upgraded called directly, the way app and router do, with every
// outcome: a failed handshake (Err set) is "failed" whatever Accepted
// says, and an accepted one is "accepted".
func TestAdvUpgradedOutcomes(t *testing.T) {
	h := newHarness(t, observe.Options{})
	req := httptest.NewRequest("GET", "/ws/x", nil)
	for _, u := range []wsconn.UpgradeResult{
		{Route: "/ws/x", Accepted: true, Status: 101, Duration: time.Millisecond},
		{Route: "/ws/x", Status: 426, Duration: time.Millisecond},
		{Route: "/ws/x", Status: 500, Err: fmt.Errorf("client went away"), Duration: time.Millisecond},
		{Route: "", Status: 404, Duration: time.Millisecond},
		{Route: "", Status: 503}, // the app's own refusal, not timed
	} {
		h.obs.Upgraded(req, u)
	}
	m := h.collect(t)
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/x"), attrStatus(101), attrOutcome("accepted"))
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/x"), attrStatus(426), attrOutcome("refused"))
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/x"), attrStatus(500), attrOutcome("failed"))
	m.want(t, 1, "colibri.upgrades", attrRoute(""), attrStatus(404), attrOutcome("refused"))
	m.want(t, 1, "colibri.upgrades", attrRoute(""), attrStatus(503), attrOutcome("refused"))
	if n, _ := m.histogram(t, "colibri.upgrade.duration", attrRoute(""), attrOutcome("refused")); n != 1 {
		t.Errorf("%d refused durations on route \"\", want 1 (the 503 the app did not time is not recorded)", n)
	}
}

// Handler (doc: "ends it with the HTTP status once the 101 response or
// the refusal is written"): an informational 1xx before the final
// response is not the status the client received.
func TestAdvHandlerSpanStatusAfterInformational(t *testing.T) {
	h := newHarness(t, observe.Options{})
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.js>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = w.Write([]byte("no websocket here"))
	})
	req := httptest.NewRequest("GET", "/ws/x", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	rec := httptest.NewRecorder()
	h.obs.Handler(next).ServeHTTP(rec, req)
	spans := h.spansNamed("GET")
	if len(spans) != 1 {
		t.Fatalf("%d upgrade spans, want 1", len(spans))
	}
	if v, _ := attr(spans[0], observe.AttrStatus); v.AsInt64() != 200 {
		t.Errorf("upgrade span status %d, want 200 (the client got 200 after the 103)", v.AsInt64())
	}
}
