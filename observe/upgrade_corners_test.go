package observe_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"go.opentelemetry.io/otel/codes"

	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wstest"
)

// A ws route that declines (DontUpgrade) hands the request to the HTTP
// route on its path; when that route upgrades with another library
// (coder/websocket, which hijacks), the client got 101 and a WebSocket:
// the metric and Handler's span both report it as accepted with 101, and
// colibri, which serves no connection, counts none open or closed.
func TestObserveCornerHijackedAfterDeclineIsAccepted(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.DontUpgrade()
	}, echo)
	served := make(chan struct{})
	r.Handle("GET /ws", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		defer close(served)
		c, err := coder.Accept(w, req, nil)
		if err != nil {
			t.Errorf("coder.Accept: %v", err)
			return
		}
		_ = c.Close(coder.StatusNormalClosure, "")
	}))
	srv := wstest.NewServer(t, h.obs.Handler(r))
	t.Cleanup(func() { shutdown(t, r) })

	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	c, resp, err := coder.Dial(ctx, srv.URL()+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_, _, _ = c.Read(ctx) // the server's close
	_ = c.CloseNow()
	select {
	case <-served:
	case <-time.After(guard):
		t.Fatal("HTTP route did not return")
	}
	waitUntil(t, "the upgrade span", func() bool { return len(h.spans.Ended()) > 0 })

	span := h.spans.Ended()[0]
	if v, _ := attr(span, observe.AttrStatus); v.AsInt64() != 101 {
		t.Errorf("span %s = %v, want 101", observe.AttrStatus, v.String())
	}
	if v, _ := attr(span, observe.AttrOutcome); v.AsString() != "accepted" {
		t.Errorf("span %s = %q, want accepted", observe.AttrOutcome, v.AsString())
	}
	m := h.collect(t)
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws"), attrStatus(101), attrOutcome("accepted"))
	m.want(t, 0, "colibri.connections.open", attrRoute("/ws"))
	if _, ok := m["colibri.closes"]; ok {
		t.Error("colibri.closes recorded for a connection colibri did not serve")
	}
}

// A decision that panics (no Recover in the chain): net/http recovers it
// and drops the connection. The upgrade is reported as failed with 500
// (docs/observability.md, colibri.upgrade.outcome), and the span Handler
// started ends with an error status and the outcome.
func TestObserveCornerPanickingDecisionUpgradeSpan(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		panic("decision failed")
	}, echo)
	srv := wstest.NewServer(t, h.obs.Handler(r))
	t.Cleanup(func() { shutdown(t, r) })

	base := "http" + strings.TrimPrefix(srv.URL(), "ws")
	req, _ := http.NewRequest(http.MethodGet, base+"/ws", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if resp, err := http.DefaultTransport.RoundTrip(req); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("got %d, want the connection dropped", resp.StatusCode)
	}
	waitUntil(t, "the upgrade span", func() bool { return len(h.spans.Ended()) > 0 })
	span := h.spans.Ended()[0]
	if span.Status().Code != codes.Error {
		t.Errorf("span %q status %v, want Error", span.Name(), span.Status())
	}
	if _, ok := attr(span, observe.AttrOutcome); !ok {
		t.Errorf("span %q has no %s", span.Name(), observe.AttrOutcome)
	}
	m := h.collect(t)
	if sum, _ := m.int64Point(t, "colibri.upgrades", attrRoute("/ws"), attrStatus(500), attrOutcome("failed")); sum != 1 {
		t.Errorf("colibri.upgrades{/ws,500,failed} = %d, want 1 for the panicking request", sum)
	}
}
