package middleware_test

// Corner tests of the stock middleware over real loopback sockets: raw
// HTTP/1.1 bytes, net/http's client, gorilla/websocket, coder/websocket and
// the x/net/http2 client for RFC 8441. They reuse the helpers of
// promises_test.go, adversarial_test.go and helpers_external_test.go.

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/colibri-ws/colibri/internal/h2test"
	_ "github.com/colibri-ws/colibri/internal/xconnect" // extended CONNECT for this test binary
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
)

// log.go: "status: the status the client receives". A ws route in a group
// with Log declines (DontUpgrade) and no HTTP route serves the path: the
// router answers 403 "this WebSocket endpoint declined the upgrade"; the
// group's Log line must say 403, not the 200 of a chain that wrote
// nothing.
func TestMiddlewareCornerLogDeclinedUpgradeInGroup(t *testing.T) {
	logger, logs := newSink()
	r := newRouter()
	r.Group(func(g *router.Router) {
		g.Use(middleware.Log(logger))
		router.WS(g, "/ws", func(*http.Request) (string, router.Decision) {
			return "", router.DontUpgrade()
		}, who)
	})
	base := serve(t, r)
	resp, body := refused(t, wsURL(base, "/ws"), nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("declined upgrade: %d %q, want 403", resp.StatusCode, body)
	}
	line := logs.next(t, map[string]any{"msg": "request", "path": "/ws"})
	wantAttrs(t, line, map[string]any{"status": int64(http.StatusForbidden), "level": "WARN", "upgrade": "refused"})
	logs.empty(t)
}

// log.go: "status: the status the client receives ... 101 when a ws route
// accepted an upgrade"; docs/routing.md step 5: a stopping router answers
// 503 after the chain has returned. Log must not record an accepted 101
// for a request the client got a 503 for.
func TestMiddlewareCornerLogAcceptedThenRouterRefuses(t *testing.T) {
	logger, logs := newSink()
	r := newRouter()
	r.Use(middleware.Log(logger))
	router.WS(r, "/ws", nil, who)
	base := serve(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if _, err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	resp, _ := refused(t, wsURL(base, "/ws"), nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade to a stopped router: %d, want 503", resp.StatusCode)
	}
	line := logs.next(t, map[string]any{"msg": "request", "path": "/ws"})
	wantAttrs(t, line, map[string]any{"status": int64(http.StatusServiceUnavailable), "upgrade": "refused", "level": "ERROR"})
}

// recover.go: when the handler had already started the response, Recover
// logs and aborts it, so that the client sees it cut off (here, since the
// start was still buffered, no response at all) rather than a shorter
// body that looks complete.
func TestMiddlewareCornerRecoverAfterPartialBody(t *testing.T) {
	r := newRouter()
	r.Use(middleware.Recover(quietLogger))
	r.HandleFunc("GET /partial", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "partial")
		panic("half way")
	})
	router.WS(r, "/ws", nil, who)
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")
	resp, body, err := rawExchange(t, addr, "GET /partial HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp != nil && err == nil {
		t.Fatalf("a response cut short by a panic looks complete: %d, Content-Length %d, body %q",
			resp.StatusCode, resp.ContentLength, body)
	}
}

// BasicAuth claims RFC 7617, whose credentials are auth-scheme 1*SP
// token68 (RFC 9110 §11.4): more than one space after "Basic" is valid,
// as Bearer accepts for its scheme.
func TestMiddlewareCornerBasicAuthSpaces(t *testing.T) {
	var decisions atomic.Int32
	r := newRouter()
	r.With(middleware.BasicAuth("r", middleware.BasicAuthUsers(map[string]string{"alice": "wonder"}))).
		Group(func(g *router.Router) { router.WS(g, "/ws", counting(&decisions), who) })
	base := serve(t, r)
	good := base64.StdEncoding.EncodeToString([]byte("alice:wonder"))
	msg, _, done := accepted(t, wsURL(base, "/ws"), http.Header{"Authorization": {"Basic  " + good}})
	done()
	if !strings.HasPrefix(msg, `user="alice" ok=true`) {
		t.Fatalf("handler saw %s", msg)
	}
}

// h2Serve serves h over TLS with HTTP/1.1 and HTTP/2 on a loopback port
// and returns its https:// base URL and an HTTP/2 client. The cleanup
// shuts the router (if h is one) and the server down together.
func h2Serve(t *testing.T, h http.Handler) (string, *h2test.Client) {
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
		if r, ok := h.(*router.Router); ok {
			wg.Go(func() { _, _ = r.Shutdown(ctx) })
		}
		wg.Go(func() { _ = srv.Shutdown(ctx) })
		wg.Wait()
		client.Close()
		_ = srv.Close()
		<-served
	})
	return "https://" + ln.Addr().String(), client
}

// log.go over RFC 8441: an accepted extended CONNECT is logged 200
// "accepted"; refusals by Bearer (401) and UpgradeRateLimit (429, with
// Retry-After) and a decision's panic answered by Recover (500) each get
// their one line, as does a panic after the route accepted, which opens
// no stream; the server goes on; UserFrom and RequestIDFrom reach the
// handler; a plain HTTP/2 GET has no upgrade attribute. UpgradeRateLimit
// sees the :protocol pseudo-header net/http hands over.
func TestMiddlewareCornerStackOverHTTP2(t *testing.T) {
	logger, logs := newSink()
	r := newRouter()
	r.Use(middleware.RequestID, middleware.Log(logger), middleware.Recover(quietLogger),
		middleware.UpgradeRateLimitWith(0.001, 1, middleware.RateLimitOptions{
			ClientIP: func(r *http.Request) string { return r.Header.Get("X-Client") },
		}),
		middleware.Bearer(verifyGood))
	router.WS(r, "/ws", nil, who)
	router.WS(r, "/ws/panic", func(*http.Request) (string, router.Decision) { panic("decision kaboom") }, who)
	r.With(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req) // the route accepts
			panic("after the decision")
		})
	}).Group(func(g *router.Router) { router.WS(g, "/ws/after", nil, who) })
	r.HandleFunc("GET /plain", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "plain") })
	base, client := h2Serve(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	auth := func(client string) http.Header {
		return http.Header{"Authorization": {"Bearer good-token"}, "X-Client": {client}, "X-Request-Id": {"h2-" + client}}
	}

	s, resp, err := client.Dial(ctx, base+"/ws", auth("a"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get(middleware.RequestIDHeader) != "h2-a" {
		t.Errorf("200 carries X-Request-ID %q", resp.Header.Get(middleware.RequestIDHeader))
	}
	op, msg, err := s.ReadMessage()
	if err != nil || op != ws.OpText || string(msg) != `user="alice" ok=true id=h2-a value=` {
		t.Errorf("handler said %q (%v)", msg, err)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/ws"}), map[string]any{
		"level": "INFO", "method": "CONNECT", "status": int64(200), "upgrade": "accepted", "request_id": "h2-a", "panic": nil,
	})
	if c, err := s.Close(ws.StatusNormalClosure, ""); err != nil || c.Code != ws.StatusNormalClosure {
		t.Errorf("close: %v %v", c, err)
	}

	_, resp, err = client.Dial(ctx, base+"/ws", auth("a"))
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1000" {
		t.Errorf("second CONNECT from client a: %v %v, want 429 with Retry-After 1000", resp, err)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/ws"}), map[string]any{
		"level": "WARN", "status": int64(429), "upgrade": "refused",
	})

	_, resp, err = client.Dial(ctx, base+"/ws", http.Header{"X-Client": {"b"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("CONNECT without a token: %v %v, want 401 with the Bearer challenge", resp, err)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/ws"}), map[string]any{
		"level": "WARN", "status": int64(401), "upgrade": "refused",
	})

	_, resp, err = client.Dial(ctx, base+"/ws/panic", auth("c"))
	if err == nil || resp == nil || resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("CONNECT whose decision panics: %v %v, want 500", resp, err)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/ws/panic"}), map[string]any{
		"level": "ERROR", "status": int64(500), "upgrade": "refused", "panic": nil,
	})

	_, resp, err = client.Dial(ctx, base+"/ws/after", auth("e"))
	if err == nil || resp == nil || resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Upgrade") != "" {
		t.Errorf("CONNECT whose chain panics after the decision: %v %v, want a 500 without Upgrade", resp, err)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/ws/after"}), map[string]any{
		"level": "ERROR", "status": int64(500), "upgrade": "refused",
	})
	if n := r.Connections(); n != 0 {
		t.Errorf("%d WebSockets open after refusals", n)
	}

	preq, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/plain", nil)
	preq.Header = auth("d")
	presp, err := client.HTTP.Do(preq)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if presp.StatusCode != http.StatusOK || string(b) != "plain" || presp.ProtoMajor != 2 {
		t.Errorf("plain GET after the panic: %d %q over %s", presp.StatusCode, b, presp.Proto)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/plain"}), map[string]any{
		"level": "INFO", "method": "GET", "status": int64(200), "upgrade": nil,
	})
	logs.empty(t)
}

// origin.go over RFC 8441: the request's own host is the :authority, the
// request's scheme https; Origins and the ws route's own check let a page
// of the server's origin through and refuse a foreign one and "null" with
// a 403 that names the origin, before the decision.
func TestMiddlewareCornerOriginsOverHTTP2(t *testing.T) {
	var decisions atomic.Int32
	r := newRouter()
	r.With(middleware.Origins("*.example.com")).Group(func(g *router.Router) {
		router.WS(g, "/ws/mw", counting(&decisions), who, router.WithAnyOrigin())
	})
	router.WS(r, "/ws/route", counting(&decisions), who, router.WithOrigins("*.example.com"))
	base, client := h2Serve(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	for _, path := range []string{"/ws/mw", "/ws/route"} {
		for _, origin := range []string{base, strings.ToUpper(base), "https://app.example.com", "https://a.b.example.com:443"} {
			s, _, err := client.Dial(ctx, base+path, http.Header{"Origin": {origin}})
			if err != nil {
				t.Errorf("%s, Origin %q: %v, want it accepted", path, origin, err)
				continue
			}
			if c, err := s.Close(ws.StatusNormalClosure, ""); err != nil || c.Code != ws.StatusNormalClosure {
				t.Errorf("%s: close %v %v", path, c, err)
			}
		}
		before := decisions.Load()
		for _, origin := range []string{"http://evil.test", "null", strings.Replace(base, "https", "wss", 1), "https://example.com", base + "/"} {
			_, resp, err := client.Dial(ctx, base+path, http.Header{"Origin": {origin}})
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), `"`+origin+`"`) {
				t.Errorf("%s, Origin %q: %v %v, want 403 naming the origin", path, origin, resp, err)
			}
		}
		if n := decisions.Load() - before; n != 0 {
			t.Errorf("%s: the decision ran %d times for refused origins", path, n)
		}
	}
}

// recover.go: "A panic with http.ErrAbortHandler is passed on untouched":
// a decision that aborts gets no 500 (net/http drops the connection),
// Recover logs nothing, Log's line has panic=true and status 0, and the
// server goes on.
func TestMiddlewareCornerRecoverLetsAbortThrough(t *testing.T) {
	logger, logs := newSink()
	recLogger, recLogs := newSink()
	r := newRouter()
	r.Use(middleware.Log(logger), middleware.Recover(recLogger))
	router.WS(r, "/ws/abort", func(*http.Request) (string, router.Decision) { panic(http.ErrAbortHandler) }, who)
	router.WS(r, "/ws", nil, who)
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")
	resp, body, err := rawExchange(t, addr, "GET /ws/abort HTTP/1.1\r\nHost: x\r\n"+upgradeHeaders+"\r\n")
	if err == nil || resp != nil {
		t.Fatalf("aborted upgrade answered %v %q, want the connection dropped", resp, body)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/ws/abort"}), map[string]any{
		"level": "ERROR", "status": int64(0), "panic": true, "upgrade": nil,
	})
	recLogs.empty(t)
	_, _, done := accepted(t, wsURL(base, "/ws"), nil)
	done()
	logs.next(t, map[string]any{"msg": "request", "path": "/ws", "upgrade": "accepted"})
	recLogs.empty(t)
	logs.empty(t)
}

// recover.go: after a hijack Recover only logs: nothing it writes may
// reach the connection the handler took over. The client reads exactly
// what the handler wrote before panicking.
func TestMiddlewareCornerRecoverAfterHijackWritesNothing(t *testing.T) {
	recLogger, recLogs := newSink()
	r := newRouter()
	r.Use(middleware.Recover(recLogger))
	const said = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-own\r\nConnection: Upgrade\r\n\r\nown protocol"
	r.HandleFunc("GET /own", func(w http.ResponseWriter, _ *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack through Recover: %v", err)
			return
		}
		defer c.Close()
		_, _ = brw.WriteString(said)
		_ = brw.Flush()
		panic("after the hijack")
	})
	router.WS(r, "/ws", nil, who)
	base := serve(t, r)
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), guard)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(guard))
	io.WriteString(c, "GET /own HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x-own\r\n\r\n")
	got, err := io.ReadAll(c)
	if err != nil || string(got) != said {
		t.Fatalf("client read %q (%v), want exactly %q", got, err, said)
	}
	wantAttrs(t, recLogs.next(t, map[string]any{"msg": "panic"}), map[string]any{"panic": "after the hijack", "path": "/own"})
	recLogs.empty(t)
}

// ratelimit.go: one bucket per client IP, IPv4 and IPv6 apart, and
// X-Forwarded-For is not trusted by default: a client cannot pick a new
// key with it. Plain requests cost nothing even with the bucket empty.
func TestMiddlewareCornerUpgradeRateLimitPerAddressFamily(t *testing.T) {
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	var decisions atomic.Int32
	r := newRouter()
	r.Use(middleware.UpgradeRateLimit(0.001, 1))
	router.WS(r, "/ws", counting(&decisions), who, router.WithAnyOrigin())
	r.HandleFunc("GET /plain", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "plain") })
	ln4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, r, ln4, ln6)
	up := func(addr string, extra string) (int, string) {
		t.Helper()
		resp, _, err := rawExchange(t, addr, "GET /ws HTTP/1.1\r\nHost: x\r\n"+upgradeHeaders+extra+"\r\n")
		if err != nil && resp == nil {
			t.Fatalf("%s: %v", addr, err)
		}
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	a6, a4 := ln6.Addr().String(), ln4.Addr().String()
	if code, _ := up(a6, ""); code != http.StatusSwitchingProtocols {
		t.Fatalf("first upgrade from ::1: %d", code)
	}
	for _, xff := range []string{"", "X-Forwarded-For: 203.0.113.9\r\n", "X-Real-IP: 203.0.113.10\r\nForwarded: for=203.0.113.11\r\n"} {
		if code, ra := up(a6, xff); code != http.StatusTooManyRequests || ra != "1000" {
			t.Errorf("second upgrade from ::1 with %q: %d Retry-After %q, want 429 and 1000", xff, code, ra)
		}
	}
	if code, _ := up(a4, ""); code != http.StatusSwitchingProtocols {
		t.Errorf("first upgrade from 127.0.0.1 after ::1 spent its token: %d, want 101", code)
	}
	if code, _ := up(a4, ""); code != http.StatusTooManyRequests {
		t.Errorf("second upgrade from 127.0.0.1: %d, want 429", code)
	}
	resp, body, err := rawExchange(t, a6, "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
	if err != nil || resp.StatusCode != http.StatusOK || body != "plain" {
		t.Errorf("plain request with the bucket empty: %v %q %v", resp, body, err)
	}
	if n := decisions.Load(); n != 2 {
		t.Errorf("%d decisions, want 2", n)
	}
}
