package observe_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// Many loopback connections open and end at once, a third each way: the
// peer closes with an application code and a reason of its own choosing,
// the handler closes with 4000, or the peer drops the TCP connection.
// With metrics and spans on, under -race: every connection gets exactly
// one span, ended once with its own conn id and the right code and side;
// colibri.closes counts each (code, side) exactly, with no attribute but
// route, code and side (the peer's arbitrary reasons add no series); open
// returns to 0; one lifetime per connection.
func TestObserveCornerConcurrentOpenCloseWithSpans(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	router.WS(r, "/ws/{mode}", func(req *http.Request) (string, router.Decision) {
		return req.PathValue("mode"), router.Upgrade(nil)
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		for m := range in.Messages(0) {
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
			if s.Value == "server" {
				return &wsconn.CloseError{Code: 4000, Reason: "done"}
			}
		}
		return in.Err()
	})
	srv := wstest.NewServer(t, h.obs.Handler(r))
	t.Cleanup(func() { shutdown(t, r) })

	const per = 10
	modes := []string{"peer", "server", "drop"}
	var wg sync.WaitGroup
	for _, mode := range modes {
		for i := range per {
			wg.Go(func() {
				ws, _, err := websocket.DefaultDialer.Dial(srv.URL()+"/ws/"+mode, nil)
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				defer ws.Close()
				_ = ws.SetReadDeadline(time.Now().Add(guard))
				if err := ws.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := ws.ReadMessage(); err != nil {
					t.Errorf("%s: echo: %v", mode, err)
					return
				}
				switch mode {
				case "peer":
					msg := websocket.FormatCloseMessage(3000+i, fmt.Sprintf("reason-%d-%d", i, time.Now().UnixNano()))
					_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(guard))
					for {
						if _, _, err := ws.ReadMessage(); err != nil {
							return
						}
					}
				case "server":
					_, _, err := ws.ReadMessage()
					if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 4000 {
						t.Errorf("server close: %v", err)
					}
				case "drop":
					_ = ws.NetConn().Close()
				}
			})
		}
	}
	wg.Wait()
	route := attrRoute("/ws/{mode}")
	waitUntil(t, "every connection closed", func() bool {
		got, _ := h.collect(t).int64Point(t, "colibri.connections.open", route)
		return got == 0 && len(h.spansNamed("WebSocket /ws/{mode}")) == 3*per
	})

	m := h.collect(t)
	m.want(t, 3*per, "colibri.upgrades", route, attrStatus(101), attrOutcome("accepted"))
	for i := range per {
		m.want(t, 1, "colibri.closes", route, attrCloseCode(3000+i), attrClosedBy("peer"))
	}
	m.want(t, per, "colibri.closes", route, attrCloseCode(4000), attrClosedBy("local"))
	m.want(t, per, "colibri.closes", route, attrCloseCode(1006), attrClosedBy("peer"))
	closes := m["colibri.closes"].(metricdata.Sum[int64])
	if len(closes.DataPoints) != per+2 {
		t.Errorf("colibri.closes has %d series, want %d", len(closes.DataPoints), per+2)
	}
	for _, p := range closes.DataPoints {
		if p.Attributes.Len() != 3 {
			t.Errorf("colibri.closes series %v: want route, code and side only", p.Attributes.ToSlice())
		}
	}
	var lifetimes uint64
	for _, by := range []string{"peer", "local"} {
		n, _ := m.histogram(t, "colibri.connection.duration", route, attrClosedBy(by))
		lifetimes += n
	}
	if lifetimes != 3*per {
		t.Errorf("%d lifetimes, want %d", lifetimes, 3*per)
	}
	m.want(t, 3*per, "colibri.messages", route, attrDirection("receive"), attrKind("text"))

	ids := map[int64]bool{}
	byCode := map[int64]int{}
	for _, s := range h.spansNamed("WebSocket /ws/{mode}") {
		id, _ := attr(s, "colibri.conn.id")
		if ids[id.AsInt64()] {
			t.Errorf("two connection spans with conn id %d", id.AsInt64())
		}
		ids[id.AsInt64()] = true
		code, _ := attr(s, "websocket.close.code")
		byCode[code.AsInt64()]++
		if s.EndTime().Before(s.StartTime()) {
			t.Errorf("span ends before it starts")
		}
	}
	if byCode[4000] != per || byCode[1006] != per {
		t.Errorf("connection spans by close code %v", byCode)
	}
}

// The no-op TracerProvider of go.opentelemetry.io/otel/trace/noop (what
// an application hands over when tracing is off) is a TracerProvider like
// any other: Handler wraps the router with non-recording spans, and
// upgrades, refusals and connections are served and counted as usual.
func TestObserveCornerNoopTracerProvider(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	obs, err := observe.New(observe.Options{TracerProvider: noop.NewTracerProvider(), MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{obs: obs, reader: reader}
	r := router.New(router.WithConfig(quiet), router.WithObserver(obs))
	srv := echoServer(t, r, obs.Handler)
	ws := wsDial(t, srv.URL(), "/ws/echo", nil, nil)
	if err := ws.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
		t.Fatal(err)
	}
	readText(t, ws, "x")
	sendClose(t, ws, 1000, "")
	readClose(t, ws)
	if _, resp, err := websocket.DefaultDialer.Dial(srv.URL()+"/nowhere", nil); err == nil || resp == nil || resp.StatusCode != 404 {
		t.Fatalf("dial /nowhere: %v %v", resp, err)
	}
	shutdown(t, r)
	// The router reports an accepted upgrade after handing the
	// connection over, on the request's goroutine, which may come after
	// the connection is over.
	waitUntil(t, "the accepted upgrade's report", func() bool {
		n, _ := h.collect(t).int64Point(t, "colibri.upgrades", attrRoute("/ws/echo"), attrStatus(101), attrOutcome("accepted"))
		return n == 1
	})
	m := h.collect(t)
	m.want(t, 1, "colibri.upgrades", attrRoute("/ws/echo"), attrStatus(101), attrOutcome("accepted"))
	m.want(t, 1, "colibri.upgrades", attrRoute(""), attrStatus(404), attrOutcome("refused"))
	m.want(t, 1, "colibri.closes", attrRoute("/ws/echo"), attrCloseCode(1000), attrClosedBy("peer"))
	m.want(t, 1, "colibri.messages", attrRoute("/ws/echo"), attrDirection("transmit"), attrKind("text"))
}
