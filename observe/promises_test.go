package observe_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// guard bounds waits for what should happen at once: a failure guard.
const guard = 10 * time.Second

func wsDial(t *testing.T, base, path string, d *websocket.Dialer, h http.Header) *websocket.Conn {
	t.Helper()
	if d == nil {
		d = websocket.DefaultDialer
	}
	ws, _, err := d.Dial(base+path, h)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

func readText(t *testing.T, ws *websocket.Conn, want string) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(guard))
	_, msg, err := ws.ReadMessage()
	if err != nil || string(msg) != want {
		t.Fatalf("read %q, %v; want %q", msg, err, want)
	}
	_ = ws.SetReadDeadline(time.Time{})
}

// readClose reads until the server's CLOSE and returns its code; -1 for
// a connection that ended without one.
func readClose(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(guard))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("no close: %v", err)
		}
		return -1
	}
}

func sendClose(t *testing.T, ws *websocket.Conn, code int, reason string) {
	t.Helper()
	if err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(guard)); err != nil {
		t.Fatal(err)
	}
}

// docs/observability.md "Metrics": every instrument's name, type, unit
// and histogram buckets, and the names the Prometheus exporter turns them
// into, each series carrying otel_scope_name.
func TestPromiseMetricNamesTypesUnitsAndPrometheusNames(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())
	obs, err := observe.New(observe.Options{MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	hub, err := topics.NewHub(&topics.Options{OnDrop: obs.Dropped})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	hreg, err := obs.WatchHub("chat", hub)
	if err != nil {
		t.Fatal(err)
	}
	defer hreg.Unregister()

	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, PingInterval: 20 * time.Millisecond}), router.WithObserver(obs))
	router.WS(r, "/ws/all", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		m := hub.Join(s.Conn, &topics.MemberOptions{Limits: topics.Limits{MaxBytes: 64}})
		if err := m.Subscribe("t"); err != nil {
			return err
		}
		for msg := range in.Messages(0) {
			if msg.Text() == "big" {
				if err := hub.Publish(ctx, "t", messages.Text(strings.Repeat("x", 100))); err != nil {
					return err
				}
			}
			if err := out.WriteMessage(ctx, msg); err != nil {
				return err
			}
		}
		return in.Err()
	})
	srv := wstest.NewServer(t, r)
	ws := wsDial(t, srv.URL(), "/ws/all", nil, nil)
	if err := ws.WriteMessage(websocket.TextMessage, []byte("big")); err != nil {
		t.Fatal(err)
	}
	readText(t, ws, "big")
	// gorilla answers the keep-alive pings while it reads.
	closed := make(chan int, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					closed <- ce.Code
				} else {
					closed <- -1
				}
				return
			}
		}
	}()
	collect := func() map[string]metricdata.Metrics {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		out := map[string]metricdata.Metrics{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				out[m.Name] = m
			}
		}
		return out
	}
	waitUntil(t, "a ping round trip is recorded", func() bool {
		h, ok := collect()["colibri.ping.rtt"].Data.(metricdata.Histogram[float64])
		return ok && len(h.DataPoints) > 0
	})
	bad := wsDial(t, srv.URL(), "/ws/all", nil, nil)
	if err := bad.WriteMessage(websocket.TextMessage, []byte{0xff}); err != nil {
		t.Fatal(err)
	}
	if code := readClose(t, bad); code != 1007 {
		t.Fatalf("invalid UTF-8 closed with %d, want 1007", code)
	}
	sendClose(t, ws, 4000, "bye")
	select {
	case <-closed:
	case <-time.After(guard):
		t.Fatal("no close")
	}
	shutdown(t, r)
	srv.Close()

	got := collect()
	type want struct {
		kind    string // sum, updown, gauge, histogram
		unit    string
		prom    string
		buckets []float64
	}
	wants := map[string]want{
		"colibri.connections.open":      {"updown", "{connection}", "colibri_connections_open", nil},
		"colibri.upgrades":              {"sum", "{request}", "colibri_upgrades_total", nil},
		"colibri.upgrade.duration":      {"histogram", "s", "colibri_upgrade_duration_seconds", []float64{0.0001, 10}},
		"colibri.messages":              {"sum", "{message}", "colibri_messages_total", nil},
		"colibri.message.payload":       {"sum", "By", "colibri_message_payload_bytes_total", nil},
		"colibri.ping.rtt":              {"histogram", "s", "colibri_ping_rtt_seconds", []float64{0.0005, 10}},
		"colibri.protocol_errors":       {"sum", "{error}", "colibri_protocol_errors_total", nil},
		"colibri.closes":                {"sum", "{connection}", "colibri_closes_total", nil},
		"colibri.connection.duration":   {"histogram", "s", "colibri_connection_duration_seconds", []float64{0.1, 86400}},
		"colibri.topics.drops":          {"sum", "{message}", "colibri_topics_drops_total", nil},
		"colibri.topics.queue.messages": {"gauge", "{message}", "colibri_topics_queue_messages", nil},
		"colibri.topics.queue.bytes":    {"gauge", "By", "colibri_topics_queue_bytes", nil},
		"colibri.topics.queue.longest":  {"gauge", "{message}", "colibri_topics_queue_longest", nil},
		"colibri.topics.members":        {"gauge", "{member}", "colibri_topics_members", nil},
	}
	for name, w := range wants {
		m, ok := got[name]
		if !ok {
			t.Errorf("%s: not recorded", name)
			continue
		}
		if m.Unit != w.unit {
			t.Errorf("%s: unit %q, want %q", name, m.Unit, w.unit)
		}
		kind := fmt.Sprintf("%T", m.Data)
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			kind = "sum"
			if !d.IsMonotonic {
				kind = "updown"
			}
		case metricdata.Gauge[int64]:
			kind = "gauge"
		case metricdata.Histogram[float64]:
			kind = "histogram"
			for _, p := range d.DataPoints {
				b := p.Bounds
				if len(b) == 0 || b[0] != w.buckets[0] || b[len(b)-1] != w.buckets[1] {
					t.Errorf("%s: buckets %v, want from %g to %g", name, b, w.buckets[0], w.buckets[1])
				}
			}
		}
		if kind != w.kind {
			t.Errorf("%s: a %s, want a %s", name, kind, w.kind)
		}
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	prom := map[string]bool{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "colibri_") {
			continue
		}
		prom[f.GetName()] = true
		for _, m := range f.GetMetric() {
			scoped := false
			for _, l := range m.GetLabel() {
				scoped = scoped || l.GetName() == "otel_scope_name" && l.GetValue() == observe.ScopeName
			}
			if !scoped {
				t.Errorf("%s: a series without otel_scope_name", f.GetName())
			}
		}
	}
	for name, w := range wants {
		if !prom[w.prom] {
			var have []string
			for p := range prom {
				have = append(have, p)
			}
			slices.Sort(have)
			t.Errorf("%s: no Prometheus family %s; have %v", name, w.prom, have)
		}
	}
}

// waitUntil polls cond, a failure guard around something that happens by
// itself (a keep-alive ping).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// docs/observability.md "Attributes" (websocket.close.code and .by) and
// "Tracing" (error status for the failure codes): how the ways a
// connection ends on the server's side are counted and traced.
func TestPromiseLocalClosesCodesSidesAndSpanStatus(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	router.WS(r, "/ws/end", func(req *http.Request) (string, router.Decision) {
		return req.URL.Query().Get("do"), router.Upgrade(nil)
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		if err := out.WriteText(ctx, "ready"); err != nil {
			return err
		}
		switch s.Value {
		case "return":
			return nil
		case "fail":
			return errors.New("boom")
		case "closenow":
			s.CloseNow()
			return nil
		}
		<-ctx.Done() // until the shutdown
		return nil
	})
	srv := wstest.NewServer(t, r)
	for _, c := range []struct {
		do   string
		code int
	}{{"return", 1000}, {"fail", 1011}, {"closenow", 1006}} { // gorilla: 1006 for no CLOSE
		ws := wsDial(t, srv.URL(), "/ws/end?do="+c.do, nil, nil)
		readText(t, ws, "ready")
		if got := readClose(t, ws); got != c.code {
			t.Errorf("%s: client saw close %d, want %d", c.do, got, c.code)
		}
		_ = ws.Close()
	}
	ws := wsDial(t, srv.URL(), "/ws/end?do=wait", nil, nil)
	readText(t, ws, "ready")
	done := make(chan int, 1)
	go func() {
		_ = ws.SetReadDeadline(time.Now().Add(guard))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					done <- ce.Code
				} else {
					done <- -1
				}
				return
			}
		}
	}()
	shutdown(t, r)
	if code := <-done; code != 1001 {
		t.Errorf("shutdown: client saw %d, want 1001", code)
	}
	srv.Close()

	m := h.collect(t)
	route, local := attrRoute("/ws/end"), attrClosedBy("local")
	for _, code := range []int{1000, 1011, 1006, 1001} {
		m.want(t, 1, "colibri.closes", route, attrCloseCode(code), local)
	}
	if n, _ := m.histogram(t, "colibri.connection.duration", route, local); n != 4 {
		t.Errorf("%d connection durations closed locally, want 4", n)
	}
	m.want(t, 0, "colibri.connections.open", route)
	spans := h.spansNamed("WebSocket /ws/end")
	if len(spans) != 4 {
		t.Fatalf("%d connection spans, want 4", len(spans))
	}
	for _, s := range spans {
		code, _ := attr(s, observe.AttrCloseCode)
		by, _ := attr(s, observe.AttrClosedBy)
		wantErr := code.AsInt64() == 1011 || code.AsInt64() == 1006
		if (s.Status().Code == codes.Error) != wantErr || by.AsString() != "local" {
			t.Errorf("span closed with %d by %s has status %v", code.AsInt64(), by.AsString(), s.Status())
		}
	}
}

// docs/observability.md "Tracing": the connection span's attributes at
// the start and the end, the per-message spans' size, the upgrade span's
// name and attributes, baggage read by the default propagator, and the
// global propagator never used.
func TestPromiseSpanAttributes(t *testing.T) {
	global := otel.GetTextMapPropagator()
	spy := &spyPropagator{}
	otel.SetTextMapPropagator(spy)
	defer otel.SetTextMapPropagator(global)

	h := newHarness(t, observe.Options{PerMessageSpans: true})
	cfg := quiet
	cfg.Compression = wsconn.Compression{Enabled: true}
	r := router.New(router.WithConfig(cfg), router.WithObserver(h.obs))
	ids := make(chan uint64, 1)
	router.WS(r, "/ws/chat/{room}", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		ids <- s.ID()
		if err := out.WriteText(ctx, "bag="+baggage.FromContext(ctx).Member("user").Value()); err != nil {
			return err
		}
		for msg := range in.Messages(0) {
			if err := out.WriteMessage(ctx, msg); err != nil {
				return err
			}
		}
		return in.Err()
	}, router.WithSubprotocols("chat"))
	srv := wstest.NewServer(t, h.obs.Handler(r))
	d := &websocket.Dialer{Subprotocols: []string{"chat"}, EnableCompression: true}
	ws := wsDial(t, srv.URL(), "/ws/chat/lobby", d, http.Header{"Baggage": {"user=ann"}})
	readText(t, ws, "bag=ann")
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	readText(t, ws, "hello")
	sendClose(t, ws, 4000, "bye")
	readClose(t, ws)
	if _, _, err := websocket.DefaultDialer.Dial(srv.URL()+"/nowhere", nil); err == nil {
		t.Fatal("dial /nowhere upgraded")
	}
	shutdown(t, r)
	srv.Close()
	id := <-ids

	if spy.used() {
		t.Error("the global propagator was used")
	}
	conns := h.spansNamed("WebSocket /ws/chat/{room}")
	if len(conns) != 1 {
		t.Fatalf("%d connection spans, want 1", len(conns))
	}
	c := conns[0]
	wantAttrs := map[attribute.Key]any{
		observe.AttrRoute:             "/ws/chat/{room}",
		observe.AttrSubprotocol:       "chat",
		observe.AttrCompression:       "permessage-deflate",
		"colibri.conn.id":             int64(id),
		observe.AttrCloseCode:         int64(4000),
		observe.AttrCloseReason:       "bye",
		observe.AttrClosedBy:          "peer",
		"websocket.messages.received": int64(1),
		"websocket.messages.sent":     int64(2),
		"network.peer.address":        "127.0.0.1",
		"network.peer.port":           int64(ws.LocalAddr().(*net.TCPAddr).Port),
		"websocket.bytes.received":    nil, // present
		"websocket.bytes.sent":        nil,
	}
	for k, w := range wantAttrs {
		v, ok := attr(c, k)
		switch {
		case !ok:
			t.Errorf("connection span lacks %s", k)
		case w != nil && v.AsInterface() != w:
			t.Errorf("connection span %s = %v, want %v", k, v.AsInterface(), w)
		}
	}
	for _, name := range []string{"receive", "send"} {
		for _, s := range h.spansNamed(name) {
			size, _ := attr(s, "websocket.message.size")
			kind, _ := attr(s, observe.AttrKind)
			if kind.AsString() != "text" || size.AsInt64() != 5 && size.AsInt64() != int64(len("bag=ann")) {
				t.Errorf("%s span: kind %q size %d", name, kind.AsString(), size.AsInt64())
			}
		}
	}
	up := h.spansNamed("GET /ws/chat/{room}")
	if len(up) != 1 {
		t.Fatalf("%d upgrade spans named GET /ws/chat/{room}, want 1", len(up))
	}
	for k, w := range map[attribute.Key]any{observe.AttrStatus: int64(101), observe.AttrRoute: "/ws/chat/{room}", observe.AttrOutcome: "accepted"} {
		if v, _ := attr(up[0], k); v.AsInterface() != w {
			t.Errorf("upgrade span %s = %v, want %v", k, v.AsInterface(), w)
		}
	}
	refused := h.spansNamed("GET")
	if len(refused) != 1 {
		t.Fatalf("%d upgrade spans named GET (no route), want 1", len(refused))
	}
	for k, w := range map[attribute.Key]any{observe.AttrStatus: int64(404), observe.AttrRoute: "", observe.AttrOutcome: "refused"} {
		if v, _ := attr(refused[0], k); v.AsInterface() != w {
			t.Errorf("404 upgrade span %s = %v, want %v", k, v.AsInterface(), w)
		}
	}
	m := h.collect(t)
	m.want(t, 1, "colibri.upgrades", attrRoute(""), attrStatus(404), attrOutcome("refused"))
}

// spyPropagator notes whether it was used.
type spyPropagator struct {
	mu   sync.Mutex
	hits int
}

func (s *spyPropagator) Inject(context.Context, propagation.TextMapCarrier) { s.hit() }
func (s *spyPropagator) Extract(ctx context.Context, _ propagation.TextMapCarrier) context.Context {
	s.hit()
	return ctx
}
func (s *spyPropagator) Fields() []string { return nil }
func (s *spyPropagator) hit() {
	s.mu.Lock()
	s.hits++
	s.mu.Unlock()
}
func (s *spyPropagator) used() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits > 0
}

// docs/observability.md "Setup" and "Attributes": a connection served by
// wsconn.Serve without a router has http.route "", a span named
// "WebSocket", and reports no upgrade.
func TestPromiseConnectionWithoutRouter(t *testing.T) {
	h := newHarness(t, observe.Options{})
	served := make(chan struct{})
	cfg := quiet
	cfg.Observer = h.obs
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(served)
		u, err := handshake.Accept(w, r, nil)
		if err != nil {
			return
		}
		_ = wsconn.Serve(r.Context(), u, struct{}{}, echo, &cfg)
	}))
	defer srv.Close()
	ws := wsDial(t, "ws"+strings.TrimPrefix(srv.URL, "http"), "/", nil, nil)
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(guard))
	if _, p, err := ws.ReadMessage(); err != nil || len(p) != 2 {
		t.Fatalf("echo: %v %v", p, err)
	}
	sendClose(t, ws, 1000, "")
	readClose(t, ws)
	select {
	case <-served:
	case <-time.After(guard):
		t.Fatal("Serve did not return")
	}
	m := h.collect(t)
	none := attrRoute("")
	m.want(t, 0, "colibri.connections.open", none)
	m.want(t, 1, "colibri.closes", none, attrCloseCode(1000), attrClosedBy("peer"))
	m.want(t, 1, "colibri.messages", none, attrDirection("receive"), attrKind("binary"))
	m.want(t, 2, "colibri.message.payload", none, attrDirection("transmit"), attrKind("binary"))
	if _, ok := m["colibri.upgrades"]; ok {
		if d := m["colibri.upgrades"].(metricdata.Sum[int64]); len(d.DataPoints) > 0 {
			t.Errorf("upgrades reported without a router: %+v", d.DataPoints)
		}
	}
	if n := len(h.spansNamed("WebSocket")); n != 1 {
		t.Errorf("%d spans named WebSocket, want 1", n)
	}
}

// OTel.Close: it stops reporting message counts; WatchHub's registration
// stops reporting the hub when unregistered.
func TestPromiseCloseAndUnregisterStopReporting(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	srv := echoServer(t, r, func(h http.Handler) http.Handler { return h })
	hub, err := topics.NewHub(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	reg, err := h.obs.WatchHub("h", hub)
	if err != nil {
		t.Fatal(err)
	}
	ws := wsDial(t, srv.URL(), "/ws/echo", nil, nil)
	if err := ws.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
		t.Fatal(err)
	}
	readText(t, ws, "x")
	m := h.collect(t)
	m.want(t, 1, "colibri.messages", attrRoute("/ws/echo"), attrDirection("receive"), attrKind("text"))
	m.want(t, 0, "colibri.topics.members", attrHub("h"))
	if _, ok := m.int64Point(t, "colibri.topics.members", attrHub("h")); !ok {
		t.Error("WatchHub reports no members gauge")
	}
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if err := h.obs.Close(); err != nil {
		t.Fatal(err)
	}
	m = h.collect(t)
	if _, ok := m.int64Point(t, "colibri.messages", attrRoute("/ws/echo"), attrDirection("receive"), attrKind("text")); ok {
		t.Error("messages still reported after Close")
	}
	if _, ok := m.int64Point(t, "colibri.topics.members", attrHub("h")); ok {
		t.Error("the hub is still reported after Unregister")
	}
}

// holdConn holds the server's writes while its gate is shut, so that a
// member's sender is stuck on a write for as long as the test wants.
type holdConn struct {
	net.Conn
	g *holdGate
}

type holdGate struct {
	mu    sync.Mutex
	hold  chan struct{} // non-nil: writes wait for it to close
	stuck chan struct{} // a write is waiting
}

func (c *holdConn) Write(p []byte) (int, error) {
	c.g.mu.Lock()
	h := c.g.hold
	c.g.mu.Unlock()
	if h != nil {
		select {
		case c.g.stuck <- struct{}{}:
		default:
		}
		<-h
	}
	return c.Conn.Write(p)
}

type holdListener struct {
	net.Listener
	g *holdGate
}

func (l *holdListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &holdConn{Conn: c, g: l.g}, nil
}

// docs/observability.md "Attributes": colibri.drop.reason and
// colibri.drop.policy for the drops of each policy; obs.Dropped replaces
// the hub's default warning.
func TestPromiseDropReasonsAndPolicies(t *testing.T) {
	cases := []struct {
		policy       topics.Policy
		reason, name string
		delivered    []string // what the client reads after the hold
		closeCode    int
		drops        int64
	}{
		{topics.DropOldest, "evicted", "drop-oldest", []string{"m1", "m3"}, 0, 1},
		{topics.KeepLatest, "replaced", "keep-latest", []string{"m1", "m3"}, 0, 1},
		{topics.DropNewest, "refused", "drop-newest", []string{"m1", "m2"}, 0, 1},
		{topics.Block(20 * time.Millisecond), "timed out", "block", []string{"m1", "m2"}, 0, 1},
		// m3, and m2 which was queued when the member was closed.
		{topics.Disconnect(1013), "disconnected", "disconnect", []string{"m1"}, 1013, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, observe.Options{})
			logs := &testlog.Buffer{}
			hub, err := topics.NewHub(&topics.Options{OnDrop: h.obs.Dropped, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer hub.Close()
			members := make(chan *topics.Member, 1)
			r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
			router.WS(r, "/ws/slow", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				m := hub.Join(s.Conn, &topics.MemberOptions{Policy: c.policy, Limits: topics.Limits{MaxMessages: 2}})
				if err := m.Subscribe("t"); err != nil {
					return err
				}
				members <- m
				for range in.Messages(0) {
				}
				return in.Err()
			})
			g := &holdGate{stuck: make(chan struct{}, 1)}
			srv := httptest.NewUnstartedServer(r)
			srv.Listener = &holdListener{Listener: srv.Listener, g: g}
			srv.Start()
			defer srv.Close()
			ws := wsDial(t, "ws"+strings.TrimPrefix(srv.URL, "http"), "/ws/slow", nil, nil)
			var member *topics.Member
			select {
			case member = <-members:
			case <-time.After(guard):
				t.Fatal("no member")
			}
			hold := make(chan struct{})
			g.mu.Lock()
			g.hold = hold
			g.mu.Unlock()
			publish := func(p string) {
				t.Helper()
				if err := hub.Publish(context.Background(), "t", messages.Text(p)); err != nil {
					t.Fatal(err)
				}
			}
			publish("m1")
			select {
			case <-g.stuck: // the sender is writing m1
			case <-time.After(guard):
				t.Fatal("the sender never wrote")
			}
			publish("m2") // queued: the member holds its limit of 2
			publish("m3") // does not fit
			if member.Dropped() != 1 {
				t.Errorf("member dropped %d, want 1", member.Dropped())
			}
			g.mu.Lock()
			g.hold = nil
			g.mu.Unlock()
			close(hold)
			for _, want := range c.delivered {
				readText(t, ws, want)
			}
			if c.closeCode != 0 {
				if code := readClose(t, ws); code != c.closeCode {
					t.Errorf("closed with %d, want %d", code, c.closeCode)
				}
				// Drain returns ErrLeft once what the member still held
				// has been reported.
				ctx, cancel := context.WithTimeout(context.Background(), guard)
				defer cancel()
				if err := member.Drain(ctx); !errors.Is(err, topics.ErrLeft) {
					t.Fatalf("Drain: %v, want ErrLeft", err)
				}
			} else {
				sendClose(t, ws, 1000, "")
				readClose(t, ws)
			}
			shutdown(t, r)

			m := h.collect(t)
			route := attrRoute("/ws/slow")
			m.want(t, c.drops, "colibri.topics.drops", route, observe.AttrDropReason.String(c.reason), observe.AttrDropPolicy.String(c.name))
			if c.closeCode != 0 {
				m.want(t, 1, "colibri.closes", route, attrCloseCode(c.closeCode), attrClosedBy("local"))
			}
			if strings.Contains(logs.String(), "member is dropping messages") {
				t.Errorf("the hub logged its default warning although OnDrop is obs.Dropped:\n%s", logs.String())
			}
		})
	}
}

// docs/observability.md "Your own observer": Upgraded runs after the
// answer went out, ConnOpened before the handler, Closed once after the
// handler and its tasks returned.
func TestPromiseObserverCallOrder(t *testing.T) {
	o := &orderObserver{answered: make(chan struct{}), closed: make(chan wsconn.CloseInfo, 2)}
	r := router.New(router.WithConfig(quiet), router.WithObserver(o))
	var handlerDone, taskDone sync.WaitGroup
	handlerDone.Add(1)
	taskDone.Add(1)
	var mu sync.Mutex
	var events []string
	note := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	o.note = note
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		note("handler")
		_ = s.Go(func(ctx context.Context) error {
			<-ctx.Done()
			note("task returned")
			return nil
		})
		for range in.Messages(0) {
		}
		note("handler returned")
		return nil
	})
	srv := wstest.NewServer(t, r)
	// Upgraded blocks until the client has its 101: were it called before
	// the answer went out, the dial would hang.
	ws := wsDial(t, srv.URL(), "/ws", nil, nil)
	close(o.answered)
	sendClose(t, ws, 1000, "")
	readClose(t, ws)
	select {
	case <-o.closed:
	case <-time.After(guard):
		t.Fatal("Closed not called")
	}
	srv.Close()
	mu.Lock()
	defer mu.Unlock()
	got := slices.DeleteFunc(slices.Clone(events), func(e string) bool { return e == "upgraded" })
	// The handler and its task may return in either order; Closed comes
	// after both.
	if len(got) != 5 || got[0] != "opened" || got[1] != "handler" || got[4] != "closed" ||
		!slices.Contains(got[2:4], "handler returned") || !slices.Contains(got[2:4], "task returned") {
		t.Errorf("events %q: want opened, handler, the handler's and its task's returns, closed", events)
	}
	if n := strings.Count(strings.Join(events, ","), "upgraded"); n != 1 {
		t.Errorf("Upgraded called %d times, want 1", n)
	}
	select {
	case <-o.closed:
		t.Error("Closed called twice")
	default:
	}
}

type orderObserver struct {
	wsconn.NopObserver
	note     func(string)
	answered chan struct{}
	closed   chan wsconn.CloseInfo
}

func (o *orderObserver) Upgraded(*http.Request, wsconn.UpgradeResult) {
	select {
	case <-o.answered:
	case <-time.After(guard):
		o.note("upgraded before the client had its answer")
	}
	o.note("upgraded")
}

func (o *orderObserver) ConnOpened(*wsconn.Conn) wsconn.ConnObserver {
	o.note("opened")
	return &orderConn{o: o}
}

type orderConn struct {
	wsconn.NopObserver
	o *orderObserver
}

func (c *orderConn) Closed(info wsconn.CloseInfo) {
	c.o.note("closed")
	c.o.closed <- info
}
