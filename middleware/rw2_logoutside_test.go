package middleware_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvrw2Shut shuts r down at the test's end.
func rvrw2Shut(t *testing.T, r *router.Router) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		_, _ = r.Shutdown(ctx)
	})
}

// Log in front of a router with ws routes (the router now leaves Upgrade
// in the hijacked writer's header map for an accepted WebSocket): an HTTP
// route of the application's own that hijacks an upgrade request (gorilla)
// is still logged "hijacked" with status 0, and the ws route's upgrade
// "accepted" 101.
func TestLogOutsideOwnHijackStillHijacked(t *testing.T) {
	logger, logs := newSink()
	r := newRouter()
	var legacy sync.WaitGroup
	r.HandleFunc("GET /legacy", func(w http.ResponseWriter, req *http.Request) {
		// A handler that upgrades by itself (app's package doc).
		u, err := handshake.Accept(w, req, &handshake.AcceptOptions{Header: http.Header{"X-Own": {"1"}}})
		if err != nil {
			return
		}
		cfg := wsconn.Config{Logger: quietLogger}
		legacy.Go(func() {
			_ = wsconn.Serve(context.Background(), u, "legacy", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
				if err := out.WriteText(ctx, "legacy"); err != nil {
					return err
				}
				for range in.Messages(0) {
				}
				return in.Err()
			}, &cfg)
		})
	})
	router.WS(r, "/ws", nil, who)
	rvrw2Shut(t, r)
	base := serve(t, middleware.Log(logger)(r))

	c, resp, err := dial(t, wsURL(base, "/legacy"), nil)
	if err != nil {
		t.Fatal(err, resp)
	}
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "legacy" {
		t.Fatalf("legacy: %q %v", msg, err)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/legacy"}),
		map[string]any{"status": int64(0), "upgrade": "hijacked"})
	c.Close()
	legacy.Wait()

	c, _, err = dial(t, wsURL(base, "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/ws"}),
		map[string]any{"status": int64(101), "upgrade": "accepted"})
	c.Close()
}

// Log in the r.Use of an outer router, a router with ws routes mounted in
// it: the inner router's accepted upgrade is logged 101 "accepted".
func TestLogInOuterRouterSeesInnerAccept(t *testing.T) {
	logger, logs := newSink()
	inner := newRouter()
	router.WS(inner, "/in/ws", nil, who)
	outer := newRouter()
	outer.Use(middleware.Log(logger))
	outer.Handle("/in/", inner)
	rvrw2Shut(t, inner)
	base := serve(t, outer)

	c, _, err := dial(t, wsURL(base, "/in/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/in/ws"}),
		map[string]any{"status": int64(101), "upgrade": "accepted"})
}

// A handshake that fails after the decision, its 101 never delivered (a
// client that does not read a 101 too large for the socket buffers, cut
// at the route's WriteTimeout): Log in front of the router must not log
// it as an accepted 101.
func TestLogOutsideFailedHandshakeNotAccepted(t *testing.T) {
	logger, logs := newSink()
	pad := strings.Repeat("p", 8<<20)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quietLogger, WriteTimeout: 200 * time.Millisecond}))
	router.WS(r, "/big", func(*http.Request) (string, router.Decision) {
		return "", router.Upgrade(http.Header{"X-Pad": {pad}})
	}, who)
	rvrw2Shut(t, r)
	base := serve(t, middleware.Log(logger)(r))

	nc, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "GET /big HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	line := logs.next(t, map[string]any{"msg": "request", "path": "/big"})
	if line["upgrade"] == "accepted" || line["status"] == int64(101) {
		t.Fatalf("a 101 that never went out was logged as %v %v", line["status"], line["upgrade"])
	}
	// The connection was closed: draining it ends.
	_ = nc.SetReadDeadline(time.Now().Add(guard))
	br := bufio.NewReader(nc)
	for {
		if _, err := br.Discard(1 << 16); err != nil {
			break
		}
	}
	t.Logf("logged %v %v", line["status"], line["upgrade"])
}
