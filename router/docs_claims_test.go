package router_test

// Claims of docs/routing.md, docs/http2.md and docs/observability.md that
// no other test pins, checked through loopback sockets with gorilla's and
// x/net/http2's clients.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// docs/routing.md ("One caution"): http.TimeoutHandler answers 200 after
// the ws route returned, so the client never gets its WebSocket, and no
// connection is left counted.
func TestTimeoutHandlerCancelsEveryUpgrade(t *testing.T) {
	var ran atomic.Bool
	r := router.New(router.WithConfig(quiet))
	r.Use(func(next http.Handler) http.Handler { return http.TimeoutHandler(next, 5*time.Second, "slow") })
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		ran.Store(true)
		return nil
	})
	base := serve(t, r)
	c, resp, err := gorilla.DefaultDialer.Dial(wsURL(base, "/ws"), nil)
	if err == nil {
		c.Close()
		t.Fatal("the upgrade went through http.TimeoutHandler")
	}
	if resp == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %v (%v), want 200", resp, err)
	}
	if up := resp.Header.Get("Upgrade"); up != "" {
		t.Errorf("the 200 carries Upgrade: %q", up)
	}
	time.Sleep(50 * time.Millisecond)
	if ran.Load() {
		t.Error("the handler ran")
	}
	if n := r.Connections(); n != 0 {
		t.Errorf("router counts %d connections after the dropped upgrade", n)
	}
}

// docs/http2.md (Trade-offs, "Declined upgrades get 403"): an extended
// CONNECT to a path without a ws route gets 404 even where an HTTP route
// matches it; a declined one gets 403, in the closure form too.
func TestExtendedConnectWithoutWSRouteGets404(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "the page") })
	version := http.Header{"Sec-Websocket-Version": {"13"}}

	r := router.New(router.WithConfig(quiet))
	r.Handle("/", page)
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, nil)
	resp, b := h2pConnect(t, h.client, h.base+"/page", "websocket", version)
	if resp.StatusCode != http.StatusNotFound || b != "no WebSocket endpoint at this path\n" {
		t.Errorf("CONNECT to an HTTP route's path: %d %q, want 404", resp.StatusCode, b)
	}

	e := router.New(router.WithConfig(quiet))
	router.Everywhere(func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.DontUpgrade()
	}, echo[struct{}])(e)
	e.Handle("/", page)
	h = h2pServe(t, e, nil)
	resp, b = h2pConnect(t, h.client, h.base+"/page", "websocket", version)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "declined") {
		t.Errorf("declined CONNECT in the closure form: %d %q, want 403", resp.StatusCode, b)
	}
}

// docs/http2.md (Trade-offs): with the 256 KiB stream window app sets, a
// quarter of the connection's 1 MiB, "up to three" sockets whose handlers
// do not read leave the other sockets' uploads on the connection flowing.
func TestThreeUnreadStreamsDoNotStallTheOthers(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/sink", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-ctx.Done() // write-only: never ranges
		return nil
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, func(srv *http.Server) {
		srv.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 256 << 10}
	})
	other, _ := h2pDial(t, h, "/ws")
	defer other.CloseNow()
	h2pEcho(t, other, "before")

	chunk := bytes.Repeat([]byte("s"), 32<<10)
	var sent [3]atomic.Int32
	for i := range sent {
		sink, _ := h2pDial(t, h, "/sink")
		defer sink.CloseNow()
		go func() {
			for range 64 {
				if sink.WriteFrame(ws.NewBinaryFrame(chunk)) != nil {
					return
				}
				sent[i].Add(1)
			}
		}()
	}
	// Wait until every sink's sender is held by flow control.
	total := func() (n int32) {
		for i := range sent {
			n += sent[i].Load()
		}
		return n
	}
	for last, still := int32(-1), 0; still < 4; {
		time.Sleep(50 * time.Millisecond)
		if n := total(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	for i := range sent {
		if n := sent[i].Load(); n >= 64 {
			t.Fatalf("sink %d took 2 MiB unread: flow control did not hold its sender", i)
		}
	}
	err, ok := h2cAwait(2*time.Second, func() error {
		if err := other.WriteText("after"); err != nil {
			return err
		}
		op, p, err := other.ReadMessage()
		if err == nil && (op != ws.OpText || string(p) != "after") {
			err = fmt.Errorf("got %v %q", op, p)
		}
		return err
	})
	if !ok {
		other.CloseNow()
		t.Fatal("three sockets whose handlers do not read stall the other socket of their HTTP/2 connection")
	}
	if err != nil {
		t.Fatal(err)
	}
}

// dr2Goroutine returns the "goroutine N" that heads the calling
// goroutine's stack, and whether Router.ServeHTTP is on that stack.
func dr2Goroutine() (id string, inServeHTTP bool) {
	buf := make([]byte, 64<<10)
	buf = buf[:runtime.Stack(buf, false)]
	first, _, _ := bytes.Cut(buf, []byte(" ["))
	return string(first), bytes.Contains(buf, []byte("router.(*Router).ServeHTTP"))
}

type dr2GoroutineObserver struct {
	wsconn.NopObserver
	opened chan [2]string
}

func (o *dr2GoroutineObserver) ConnOpened(*wsconn.Conn) wsconn.ConnObserver {
	id, in := dr2Goroutine()
	o.opened <- [2]string{id, fmt.Sprint(in)}
	return nil
}

// docs/observability.md ("Your own observer"): ConnOpened is called once
// per connection, after the handshake and before the handler, on the
// goroutine that starts the connection: over HTTP/1.1 the request's,
// inside Router.ServeHTTP; the handler runs on the connection's own.
func TestConnOpenedRunsOnTheRequestsGoroutine(t *testing.T) {
	obs := &dr2GoroutineObserver{opened: make(chan [2]string, 1)}
	handlerOn := make(chan string, 1)
	r := router.New(router.WithConfig(quiet), router.WithObserver(obs))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		id, _ := dr2Goroutine()
		handlerOn <- id
		return nil
	})
	base := serve(t, r)
	c, _, err := gorilla.DefaultDialer.Dial(wsURL(base, "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opened := <-obs.opened
	handler := <-handlerOn
	if opened[1] != "true" || opened[0] == handler {
		t.Fatalf("ConnOpened ran on %s (inside Router.ServeHTTP: %s), the handler on %s", opened[0], opened[1], handler)
	}
}
