package observe_test

// Corner tests of the OpenTelemetry integration over real loopback
// sockets: WebSockets over HTTP/2 (RFC 8441) with the x/net/http2 client,
// refusals by the stock middleware and by the router. They reuse the
// helpers of helpers_test.go, observe_test.go and promises_test.go.

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/colibri-ws/colibri/internal/h2test"
	_ "github.com/colibri-ws/colibri/internal/xconnect" // extended CONNECT for this test binary
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wstest"
)

// cornerH2Serve serves h over TLS with HTTP/1.1 and HTTP/2 on a loopback
// port and returns its https:// base URL and an HTTP/2 client. The
// cleanup shuts r and the server down together.
func cornerH2Serve(t *testing.T, r *router.Router, h http.Handler) (string, *h2test.Client) {
	t.Helper()
	srv, ln, pool := h2test.Server(t, h)
	client := h2test.NewClient(pool)
	served := make(chan struct{})
	go func() { _ = srv.ServeTLS(ln, "", ""); close(served) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		client.Close()
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = r.Shutdown(ctx) })
		wg.Go(func() { _ = srv.Shutdown(ctx) })
		wg.Wait()
		client.Close()
		_ = srv.Close()
		<-served
	})
	return "https://" + ln.Addr().String(), client
}

func spanAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[attribute.Key]any) {
	t.Helper()
	for k, w := range want {
		v, ok := attr(s, k)
		switch {
		case !ok:
			t.Errorf("span %q lacks %s", s.Name(), k)
		case w != nil && v.AsInterface() != w:
			t.Errorf("span %q: %s = %v, want %v", s.Name(), k, v.AsInterface(), w)
		}
	}
}

// docs/observability.md "Tracing" and "Metrics" over RFC 8441: the upgrade
// span continues the client's traceparent, carries status 200 and outcome
// accepted and ends once the router has handed the stream over, before the
// stream ends; the connection's span is a new trace linked to it; the
// metrics count the upgrade as accepted with 200, and the connection as
// open, then closed by the peer. A refused CONNECT is counted with its
// status.
func TestObserveCornerHTTP2(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	router.WS(r, "/ws/echo/{room}", func(req *http.Request) (struct{}, router.Decision) {
		if req.PathValue("room") == "closed" {
			return struct{}{}, router.Reject(http.StatusForbidden, nil, "closed")
		}
		return struct{}{}, router.Upgrade(nil)
	}, echo)
	base, client := cornerH2Serve(t, r, h.obs.Handler(r))
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	s, resp, err := client.Dial(ctx, base+"/ws/echo/lobby", http.Header{"Traceparent": {"00-" + traceID + "-" + parentID + "-01"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT answered %d", resp.StatusCode)
	}
	if err := s.WriteText("hi"); err != nil {
		t.Fatal(err)
	}
	if op, p, err := s.ReadMessage(); err != nil || op != ws.OpText || string(p) != "hi" {
		t.Fatalf("echo: %v %q %v", op, p, err)
	}
	// The stream is open: the upgrade span has ended already, the
	// connection's has not.
	var up []sdktrace.ReadOnlySpan
	for _, sp := range h.spans.Ended() {
		if sp.SpanKind() == trace.SpanKindServer && !strings.HasPrefix(sp.Name(), "WebSocket") {
			up = append(up, sp)
		}
	}
	if len(up) != 1 {
		t.Fatalf("%d upgrade spans ended while the stream is open, want 1", len(up))
	}
	if n := len(h.spansNamed("WebSocket /ws/echo/{room}")); n != 0 {
		t.Fatalf("%d connection spans ended while the stream is open", n)
	}
	m := h.collect(t)
	m.want(t, 1, "colibri.connections.open", attrRoute("/ws/echo/{room}"))
	if c, err := s.Close(ws.StatusNormalClosure, "bye"); err != nil || c.Code != ws.StatusNormalClosure {
		t.Fatalf("close: %v %v", c, err)
	}

	_, resp, err = client.Dial(ctx, base+"/ws/echo/closed", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("CONNECT to a closed room: %v %v, want 403", resp, err)
	}
	shutdown(t, r)

	u := up[0]
	if name := u.Name(); name != "CONNECT /ws/echo/{room}" {
		t.Errorf("upgrade span named %q, want the method and the route", name)
	}
	if u.Parent().TraceID().String() != traceID || u.Parent().SpanID().String() != parentID {
		t.Errorf("upgrade span's parent %v, want the traceparent's", u.Parent())
	}
	spanAttrs(t, u, map[attribute.Key]any{
		observe.AttrStatus: int64(200), observe.AttrOutcome: "accepted", observe.AttrRoute: "/ws/echo/{room}",
		"url.path": "/ws/echo/lobby",
	})
	if u.Status().Code != codes.Unset {
		t.Errorf("upgrade span status %v", u.Status())
	}
	conns := h.spansNamed("WebSocket /ws/echo/{room}")
	if len(conns) != 1 {
		t.Fatalf("%d connection spans, want 1", len(conns))
	}
	c := conns[0]
	if c.Parent().IsValid() || c.SpanContext().TraceID() == u.SpanContext().TraceID() {
		t.Errorf("connection span is not a new trace: parent %v", c.Parent())
	}
	if l := c.Links(); len(l) != 1 || !l[0].SpanContext.Equal(u.SpanContext()) {
		t.Errorf("connection span links %v, want the upgrade span", l)
	}
	spanAttrs(t, c, map[attribute.Key]any{
		observe.AttrCloseCode: int64(1000), observe.AttrCloseReason: "bye", observe.AttrClosedBy: "peer",
		"websocket.messages.received": int64(1), "websocket.messages.sent": int64(1),
		"network.peer.address": "127.0.0.1", observe.AttrCompression: "none",
	})
	refusedSpans := 0
	for _, sp := range h.spans.Ended() {
		if v, _ := attr(sp, observe.AttrStatus); v.AsInt64() == 403 {
			refusedSpans++
			spanAttrs(t, sp, map[attribute.Key]any{observe.AttrOutcome: "refused", "url.path": "/ws/echo/closed"})
		}
	}
	if refusedSpans != 1 {
		t.Errorf("%d spans with status 403, want 1", refusedSpans)
	}

	m = h.collect(t)
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/echo/{room}"), attrStatus(200), attrOutcome("accepted"))
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/echo/{room}"), attrStatus(403), attrOutcome("refused"))
	m.want(t, 0, "colibri.connections.open", attrRoute("/ws/echo/{room}"))
	m.want(t, 1, "colibri.closes", attrRoute("/ws/echo/{room}"), attrCloseCode(1000), attrClosedBy("peer"))
	m.want(t, 1, "colibri.messages", attrRoute("/ws/echo/{room}"), attrDirection("receive"), attrKind("text"))
	if n, _ := m.histogram(t, "colibri.upgrade.duration", attrRoute("/ws/echo/{room}"), attrOutcome("accepted")); n != 1 {
		t.Errorf("upgrade.duration count %d, want 1", n)
	}
}

// docs/observability.md: colibri.upgrades counts every upgrade request by
// the status it received and how it ended, and the upgrade span carries
// that status: refusals by the stock middleware (401, 429, 403 from
// Origins), a declined upgrade answered 403 by the router after the
// group's middleware, a stopping router's 503 (an error on the span).
// None opens a connection.
func TestObserveCornerRefusalsByMiddlewareAndRouter(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	r.With(middleware.Bearer(func(_ context.Context, tok string) (string, error) {
		if tok == "good" {
			return "ann", nil
		}
		return "", http.ErrNoCookie
	})).Group(func(g *router.Router) { router.WS(g, "/ws/auth", nil, echo) })
	r.With(middleware.UpgradeRateLimit(0.001, 1)).Group(func(g *router.Router) { router.WS(g, "/ws/limited", nil, echo) })
	r.With(middleware.Origins()).Group(func(g *router.Router) { router.WS(g, "/ws/origin", nil, echo, router.WithAnyOrigin()) })
	r.Group(func(g *router.Router) {
		g.Use(middleware.RequestID)
		router.WS(g, "/ws/decline", func(*http.Request) (struct{}, router.Decision) {
			return struct{}{}, router.DontUpgrade()
		}, echo)
	})
	srv := wstest.NewServer(t, h.obs.Handler(r))
	url := "ws" + strings.TrimPrefix(srv.URL(), "ws")

	status := func(path string, hdr http.Header) int {
		t.Helper()
		c, resp, err := gorilla.DefaultDialer.Dial(url+path, hdr)
		if err == nil {
			c.Close()
			return 101
		}
		if resp == nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp.StatusCode
	}
	for _, tc := range []struct {
		path   string
		hdr    http.Header
		status int
	}{
		{"/ws/auth", nil, 401},
		{"/ws/auth", http.Header{"Authorization": {"Bearer bad"}}, 401},
		{"/ws/limited", nil, 101},
		{"/ws/limited", nil, 429},
		{"/ws/origin", http.Header{"Origin": {"https://evil.test"}}, 403},
		{"/ws/decline", nil, 403},
	} {
		if got := status(tc.path, tc.hdr); got != tc.status {
			t.Errorf("%s: %d, want %d", tc.path, got, tc.status)
		}
	}
	shutdown(t, r)
	if got := status("/ws/auth", http.Header{"Authorization": {"Bearer good"}}); got != 503 {
		t.Errorf("upgrade to a stopped router: %d, want 503", got)
	}

	m := h.collect(t)
	m.want(t, 2, "colibri.upgrades", attrRoute("/ws/auth"), attrStatus(401), attrOutcome("refused"))
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/limited"), attrStatus(101), attrOutcome("accepted"))
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/limited"), attrStatus(429), attrOutcome("refused"))
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/origin"), attrStatus(403), attrOutcome("refused"))
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/decline"), attrStatus(403), attrOutcome("refused"))
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/auth"), attrStatus(503), attrOutcome("refused"))
	m.want(t, 0, "colibri.connections.open", attrRoute("/ws/limited"))

	byStatus := map[int64]int{}
	for _, sp := range h.spans.Ended() {
		if sp.SpanKind() != trace.SpanKindServer || strings.HasPrefix(sp.Name(), "WebSocket") {
			continue
		}
		st, _ := attr(sp, observe.AttrStatus)
		byStatus[st.AsInt64()]++
		path, _ := attr(sp, "url.path")
		if want := "GET " + path.AsString(); sp.Name() != want {
			t.Errorf("upgrade span %q, want %q", sp.Name(), want)
		}
		if (sp.Status().Code == codes.Error) != (st.AsInt64() >= 500) {
			t.Errorf("upgrade span with status %d has span status %v", st.AsInt64(), sp.Status())
		}
	}
	if want := map[int64]int{401: 2, 101: 1, 429: 1, 403: 2, 503: 1}; len(byStatus) != len(want) ||
		byStatus[401] != 2 || byStatus[101] != 1 || byStatus[429] != 1 || byStatus[403] != 2 || byStatus[503] != 1 {
		t.Errorf("upgrade spans by status %v, want %v", byStatus, want)
	}
}

// observe.go: "HTTP and network attributes follow OpenTelemetry's semantic
// conventions", which give client.address the address alone and its port
// to client.port, as the connection span does with network.peer.address
// and network.peer.port. The upgrade span's client.address must be the
// client's IP, not "ip:port".
func TestObserveCornerUpgradeSpanClientAddress(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	srv := echoServer(t, r, h.obs.Handler)
	c := wsDial(t, srv.URL(), "/ws/echo", nil, nil)
	sendClose(t, c, 1000, "")
	readClose(t, c)
	port := int64(c.LocalAddr().(*net.TCPAddr).Port)
	shutdown(t, r)
	// The span ends when the upgrade's ServeHTTP returns, which the
	// connection's end does not wait for.
	up := h.spansNamed("GET /ws/echo")
	for deadline := time.Now().Add(2 * time.Second); len(up) == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		up = h.spansNamed("GET /ws/echo")
	}
	if len(up) != 1 {
		t.Fatalf("%d upgrade spans, want 1", len(up))
	}
	spanAttrs(t, up[0], map[attribute.Key]any{"client.address": "127.0.0.1", "client.port": port})
}
