package observe_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/attribute"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// docs/observability.md: colibri.message.payload counts "payload bytes,
// uncompressed", what the handler read and wrote. With permessage-deflate
// negotiated by gorilla and highly compressible messages, the counts equal
// the sizes the client wrote and read, not the (far smaller) wire sizes,
// and the connection span's websocket.bytes.* carry the wire sizes
// (Conn.Stats), which are smaller.
func TestObserveCornerCompressedPayloadCountedUncompressed(t *testing.T) {
	h := newHarness(t, observe.Options{})
	cfg := quiet
	cfg.Compression = wsconn.Compression{Enabled: true}
	r := router.New(router.WithConfig(cfg), router.WithObserver(h.obs))
	srv := echoServer(t, r, h.obs.Handler)

	d := &websocket.Dialer{EnableCompression: true}
	ws := wsDial(t, srv.URL(), "/ws/echo", d, nil)
	var textN, binN, sentText, sentBin int64
	for i := range 6 {
		kind, p := websocket.TextMessage, bytes.Repeat([]byte("a"), 4000+i)
		if i%2 == 1 {
			kind, p = websocket.BinaryMessage, make([]byte, 3000+i)
		}
		if err := ws.WriteMessage(kind, p); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(guard))
		gotKind, got, err := ws.ReadMessage()
		if err != nil || gotKind != kind || !bytes.Equal(got, p) {
			t.Fatalf("echo %d: kind %d, %d bytes, %v", i, gotKind, len(got), err)
		}
		if kind == websocket.TextMessage {
			textN++
			sentText += int64(len(p))
		} else {
			binN++
			sentBin += int64(len(p))
		}
	}
	sendClose(t, ws, 1000, "")
	readClose(t, ws)
	shutdown(t, r)

	m := h.collect(t)
	route := attrRoute("/ws/echo")
	for _, dir := range []string{"receive", "transmit"} {
		m.want(t, textN, "colibri.messages", route, attrDirection(dir), attrKind("text"))
		m.want(t, binN, "colibri.messages", route, attrDirection(dir), attrKind("binary"))
		m.want(t, sentText, "colibri.message.payload", route, attrDirection(dir), attrKind("text"))
		m.want(t, sentBin, "colibri.message.payload", route, attrDirection(dir), attrKind("binary"))
	}
	spans := h.spansNamed("WebSocket /ws/echo")
	if len(spans) != 1 {
		t.Fatalf("%d connection spans", len(spans))
	}
	if v, _ := attr(spans[0], observe.AttrCompression); v.AsString() != "permessage-deflate" {
		t.Errorf("compression %q", v.AsString())
	}
	for _, k := range []string{"websocket.bytes.received", "websocket.bytes.sent"} {
		v, ok := attr(spans[0], attribute.Key(k))
		if !ok || v.AsInt64() <= 0 || v.AsInt64() >= sentText+sentBin {
			t.Errorf("span %s = %v, want the compressed wire size, under %d", k, v.String(), sentText+sentBin)
		}
	}
	for _, k := range []string{"websocket.messages.received", "websocket.messages.sent"} {
		if v, _ := attr(spans[0], attribute.Key(k)); v.AsInt64() != textN+binN {
			t.Errorf("span %s = %v, want %d", k, v.String(), textN+binN)
		}
	}
}

// docs/observability.md: colibri.upgrade.duration is "not recorded for
// the 503s the app answers itself, which it does not time"
// (UpgradeResult.Duration is 0 for them): no fake 0 s sample.
func TestObserveCornerAppRefusalRecordsZeroDuration(t *testing.T) {
	h := appRefusal(t)
	m := h.collect(t)
	n, sum := m.histogram(t, "colibri.upgrade.duration", attrRoute(""), attrOutcome("refused"))
	if n != 0 && sum == 0 {
		t.Errorf("colibri.upgrade.duration{refused}: %d sample(s) summing to exactly 0 s: the app's refusal was not timed", n)
	}
}

// appRefusal serves an echo route under an app with MaxConnections 1,
// fills it, has a second client refused with 503, and returns once the
// refusal was reported.
func appRefusal(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	router.WS(r, "/ws/echo", nil, echo)
	a := app.New(r, app.Config{MaxConnections: 1, Observer: h.obs, Logger: quiet.Logger})
	srv := wstest.NewServer(t, h.obs.Handler(a))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		_, _ = a.Shutdown(ctx)
	})

	first := wsDial(t, srv.URL(), "/ws/echo", nil, nil)
	if err := first.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
		t.Fatal(err)
	}
	readText(t, first, "x")
	_, resp, err := websocket.DefaultDialer.Dial(srv.URL()+"/ws/echo", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second dial: %v %v, want 503", resp, err)
	}
	sendClose(t, first, 1000, "")
	readClose(t, first)

	waitUntil(t, "the refusal reported", func() bool {
		got, _ := h.collect(t).int64Point(t, "colibri.upgrades", attrRoute(""), attrStatus(503), attrOutcome("refused"))
		return got == 1
	})
	return h
}

// docs/observability.md "Attributes": http.route is "" "for the 503s the
// app answers itself (full or shutting down)", though the request matched
// /ws/echo.
func TestObserveCornerAppRefusalRoute(t *testing.T) {
	h := appRefusal(t)
	h.collect(t).want(t, 1, "colibri.upgrades", attrRoute(""), attrStatus(503), attrOutcome("refused"))
}
