package observe_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

var quiet = wsconn.Config{Logger: slog.New(slog.DiscardHandler)}

func echo(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
	for m := range in.Messages(0) {
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

// echoServer serves echo at /ws/echo through r's observer and waits for
// every connection to end at cleanup.
func echoServer(t *testing.T, r *router.Router, wrap func(http.Handler) http.Handler) *wstest.Server {
	t.Helper()
	router.WS(r, "/ws/echo", nil, echo)
	srv := wstest.NewServer(t, wrap(r))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := r.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// shutdown waits for r's connections to end.
func shutdown(t *testing.T, r *router.Router) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPerMessageSpansAreChildrenOfTheConnection(t *testing.T) {
	h := newHarness(t, observe.Options{PerMessageSpans: true})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	srv := echoServer(t, r, h.obs.Handler)
	c := srv.Dial(t, "/ws/echo", nil)
	c.SendText("one")
	c.ExpectText("one")
	c.SendBinary([]byte("two"))
	c.ExpectBinary([]byte("two"))
	c.Close()
	shutdown(t, r)

	conns := h.spansNamed("WebSocket /ws/echo")
	if len(conns) != 1 {
		t.Fatalf("%d connection spans, want 1", len(conns))
	}
	conn := conns[0].SpanContext()
	for _, name := range []string{"receive", "send"} {
		spans := h.spansNamed(name)
		if len(spans) != 2 {
			t.Errorf("%d %s spans, want 2", len(spans), name)
		}
		kinds := map[string]bool{}
		for _, s := range spans {
			if s.Parent().SpanID() != conn.SpanID() || s.SpanContext().TraceID() != conn.TraceID() {
				t.Errorf("%s span's parent %v, want the connection's %v", name, s.Parent(), conn)
			}
			k, _ := attr(s, observe.AttrKind)
			kinds[k.AsString()] = true
		}
		if !kinds["text"] || !kinds["binary"] {
			t.Errorf("%s spans of kinds %v, want text and binary", name, kinds)
		}
	}
}

func TestNoMessageSpansByDefault(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	srv := echoServer(t, r, h.obs.Handler)
	c := srv.Dial(t, "/ws/echo", nil)
	c.SendText("one")
	c.ExpectText("one")
	c.Close()
	shutdown(t, r)
	if n := len(h.spansNamed("receive")) + len(h.spansNamed("send")); n != 0 {
		t.Errorf("%d message spans, want none", n)
	}
	if n := len(h.spansNamed("WebSocket /ws/echo")); n != 1 {
		t.Errorf("%d connection spans, want 1", n)
	}
}

func TestWithoutProvidersNothingIsRecorded(t *testing.T) {
	obs, err := observe.New(observe.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := router.New(router.WithConfig(quiet), router.WithObserver(obs))
	if got := obs.Handler(r); got != http.Handler(r) {
		t.Errorf("Handler without a TracerProvider wrapped the router")
	}
	srv := echoServer(t, r, obs.Handler)
	c := srv.Dial(t, "/ws/echo", nil)
	c.SendText("one")
	c.ExpectText("one")
	c.Close()
	shutdown(t, r)
}

func TestHandlerAsRouterMiddleware(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	r.Use(h.obs.Handler)
	srv := echoServer(t, r, func(h http.Handler) http.Handler { return h })
	c := srv.Dial(t, "/ws/echo", nil)
	c.Close()
	shutdown(t, r)
	spans := h.spansNamed("GET")
	if len(spans) != 1 {
		t.Fatalf("%d upgrade spans named GET, want 1", len(spans))
	}
	if status, _ := attr(spans[0], observe.AttrStatus); status.AsInt64() != http.StatusSwitchingProtocols {
		t.Errorf("status %d, want 101", status.AsInt64())
	}
	conns := h.spansNamed("WebSocket /ws/echo")
	if len(conns) != 1 || len(conns[0].Links()) != 1 || !conns[0].Links()[0].SpanContext.Equal(spans[0].SpanContext()) {
		t.Errorf("the connection span does not link to the upgrade span")
	}
}

func TestHandlerLeavesPlainRequestsAlone(t *testing.T) {
	h := newHarness(t, observe.Options{})
	handler := h.obs.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if trace.SpanFromContext(r.Context()).SpanContext().IsValid() {
			t.Error("a plain request got a span")
		}
		_, _ = io.WriteString(w, "ok")
	}))
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Body.String() != "ok" || len(h.spans.Ended()) != 0 {
		t.Errorf("body %q, %d spans; want ok and none", rec.Body.String(), len(h.spans.Ended()))
	}
}

func TestFailedHandshakeIsCountedAndTraced(t *testing.T) {
	h := newHarness(t, observe.Options{})
	var result wsconn.UpgradeResult
	handler := h.obs.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		result = wsconn.UpgradeResult{Route: "/ws/x", Status: http.StatusInternalServerError, Duration: time.Millisecond, Err: errors.New("client went away")}
		h.obs.Upgraded(r, result)
	}))
	req := httptest.NewRequest(http.MethodGet, "/ws/x", nil)
	req.Header = http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}
	handler.ServeHTTP(httptest.NewRecorder(), req)

	m := h.collect(t)
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/x"), attrStatus(500), attrOutcome("failed"))
	if n, sum := m.histogram(t, "colibri.upgrade.duration", attrRoute("/ws/x"), attrOutcome("failed")); n != 1 || sum != 0.001 {
		t.Errorf("upgrade duration: %d samples summing to %g, want one of 0.001", n, sum)
	}
	spans := h.spansNamed("GET /ws/x")
	if len(spans) != 1 {
		t.Fatalf("%d spans named GET /ws/x, want 1", len(spans))
	}
	s := spans[0]
	if s.Status().Description != "Internal Server Error" || len(s.Events()) != 1 || s.Events()[0].Name != "exception" {
		t.Errorf("span status %v, events %v; want an error with the exception", s.Status(), s.Events())
	}
}
