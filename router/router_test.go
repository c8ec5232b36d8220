package router_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// Every connection's goroutines must be gone at the end; the HTTP
// client's own keep-alive loops are not the server's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}

var quiet = wsconn.Config{Logger: slog.New(slog.DiscardHandler)}

// serve runs r on a loopback port and shuts its connections down at the
// end of the test.
func serve(t *testing.T, r *router.Router) string {
	t.Helper()
	return serveWith(t, r, r)
}

// serveWith is serve for a handler h in front of r.
func serveWith(t *testing.T, r *router.Router, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := r.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		srv.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return srv.URL
}

func wsURL(base, path string) string { return "ws" + strings.TrimPrefix(base, "http") + path }

func echo[T any](ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[T]) error {
	for m := range in.Messages(0) {
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

func dial(t *testing.T, url string, h http.Header) (*gorilla.Conn, *http.Response, error) {
	t.Helper()
	c, resp, err := gorilla.DefaultDialer.Dial(url, h)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	if resp == nil {
		t.Fatal("no response")
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return strings.TrimSpace(string(b))
}

func TestHTTPAndWebSocketOnOnePort(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	router.WS(r, "/ws/echo", nil, echo[struct{}])
	base := serve(t, r)

	resp, err := http.Get(base + "/healthz")
	if err != nil || body(t, resp) != "ok" {
		t.Fatalf("healthz: %v", err)
	}
	c, _, err := dial(t, wsURL(base, "/ws/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.WriteMessage(gorilla.TextMessage, []byte("hi"))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
		t.Fatalf("echo: %q %v", p, err)
	}
}

type member struct{ Name, Room, User string }

func TestPathValuesAndDecisionValueReachHandler(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Use(middleware.Bearer(func(ctx context.Context, token string) (string, error) {
		if token != "secret" {
			return "", errors.New("bad token")
		}
		return "ada", nil
	}))
	join := func(req *http.Request) (member, router.Decision) {
		name := req.URL.Query().Get("username")
		if name == "" {
			return member{}, router.Reject(http.StatusBadRequest, nil, "username required")
		}
		user, _ := middleware.UserFrom(req.Context())
		return member{Name: name, Room: req.PathValue("room"), User: user}, router.Upgrade(http.Header{"X-Room": {req.PathValue("room")}})
	}
	got := make(chan string, 1)
	router.WS(r, "GET /chat/{room}", join, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[member]) error {
		// Values middleware put on the request reach the handler's context.
		user, _ := middleware.UserFrom(ctx)
		got <- s.Value.Name + "@" + s.Value.Room + " by " + s.Value.User + "/" + user
		return nil
	})
	base := serve(t, r)

	auth := http.Header{"Authorization": {"Bearer secret"}}
	_, resp, err := dial(t, wsURL(base, "/chat/lobby?username=grace"), auth)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Room") != "lobby" {
		t.Fatalf("extra 101 header missing: %v", resp.Header)
	}
	if s := <-got; s != "grace@lobby by ada/ada" {
		t.Fatalf("handler saw %q", s)
	}

	_, resp, err = dial(t, wsURL(base, "/chat/lobby"), auth)
	if err == nil || resp.StatusCode != http.StatusBadRequest || body(t, resp) != "username required" {
		t.Fatalf("reject: %v %v", err, resp)
	}
}

func TestAuthRejectsBeforeUpgrade(t *testing.T) {
	upgraded := make(chan struct{}, 1)
	r := router.New(router.WithConfig(quiet))
	r.Group(func(r *router.Router) {
		r.Use(middleware.BasicAuth("chat", middleware.BasicAuthUsers(map[string]string{"ada": "lovelace"})))
		router.WS(r, "/private", func(*http.Request) (struct{}, router.Decision) {
			upgraded <- struct{}{}
			return struct{}{}, router.Upgrade(nil)
		}, echo[struct{}])
	})
	router.WS(r, "/public", nil, echo[struct{}])
	base := serve(t, r)

	_, resp, err := dial(t, wsURL(base, "/private"), nil)
	if err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("want 401, got %v %v", err, resp)
	}
	select {
	case <-upgraded:
		t.Fatal("shouldUpgrade ran for an unauthenticated request")
	default:
	}
	if _, _, err := dial(t, wsURL(base, "/public"), nil); err != nil {
		t.Fatalf("group middleware leaked to the top level: %v", err)
	}
	h := http.Header{"Authorization": {"Basic YWRhOmxvdmVsYWNl"}}
	if _, _, err := dial(t, wsURL(base, "/private"), h); err != nil {
		t.Fatalf("authenticated: %v", err)
	}
}

func TestDontUpgradeFallsThroughToHTTPRoute(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.HandleFunc("GET /feed", func(w http.ResponseWriter, req *http.Request) {
		io.WriteString(w, "plain feed")
	})
	decline := func(req *http.Request) (struct{}, router.Decision) {
		if req.URL.Query().Get("ws") == "no" {
			return struct{}{}, router.DontUpgrade()
		}
		return struct{}{}, router.Upgrade(nil)
	}
	router.WS(r, "/feed", decline, echo[struct{}])
	router.WS(r, "/only-ws", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.DontUpgrade()
	}, echo[struct{}])
	base := serve(t, r)

	_, resp, err := dial(t, wsURL(base, "/feed?ws=no"), nil)
	if err == nil || resp.StatusCode != http.StatusOK || body(t, resp) != "plain feed" {
		t.Fatalf("declined upgrade should reach the HTTP route: %v %v", err, resp)
	}
	if _, _, err := dial(t, wsURL(base, "/feed"), nil); err != nil {
		t.Fatalf("upgrade on the same path: %v", err)
	}
	resp, _ = http.Get(base + "/feed")
	if body(t, resp) != "plain feed" {
		t.Fatal("plain GET should reach the HTTP route")
	}
	_, resp, _ = dial(t, wsURL(base, "/only-ws"), nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("declined with no HTTP route: %d, want 403", resp.StatusCode)
	}
	resp, _ = http.Get(base + "/only-ws")
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Fatalf("plain GET to a ws-only route: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestBadHandshakesGetTheirStatus(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, echo[struct{}])
	base := serve(t, r)
	good := func() http.Header {
		return http.Header{
			"Upgrade":               {"websocket"},
			"Connection":            {"Upgrade"},
			"Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		}
	}
	tests := []struct {
		name    string
		method  string
		edit    func(h http.Header)
		status  int
		inBody  string
		version bool
	}{
		{name: "POST", method: "POST", status: 405, inBody: "GET"},
		{name: "no Connection upgrade", edit: func(h http.Header) { h.Set("Connection", "keep-alive") }, status: 400, inBody: "Connection: Upgrade"},
		{name: "no Upgrade header", edit: func(h http.Header) { h.Del("Upgrade") }, status: 426, inBody: "WebSocket only"},
		{name: "version 8", edit: func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, status: 426, version: true, inBody: "version 13"},
		{name: "no version", edit: func(h http.Header) { h.Del("Sec-Websocket-Version") }, status: 426, version: true},
		{name: "no key", edit: func(h http.Header) { h.Del("Sec-Websocket-Key") }, status: 400, inBody: "Sec-WebSocket-Key"},
		{name: "short key", edit: func(h http.Header) { h.Set("Sec-Websocket-Key", "c2hvcnQ=") }, status: 400, inBody: "16 bytes"},
		{name: "key not base64", edit: func(h http.Header) { h.Set("Sec-Websocket-Key", "!!!!!!!!!!!!!!!!!!!!!!!!") }, status: 400},
		{name: "cross origin", edit: func(h http.Header) { h.Set("Origin", "https://evil.example") }, status: 403, inBody: "evil.example"},
		{name: "malformed origin", edit: func(h http.Header) { h.Set("Origin", "::") }, status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			req, _ := http.NewRequest(method, base+"/ws", nil)
			req.Header = good()
			if tt.edit != nil {
				tt.edit(req.Header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b := body(t, resp)
			if resp.StatusCode != tt.status || !strings.Contains(b, tt.inBody) {
				t.Fatalf("status %d body %q, want %d containing %q", resp.StatusCode, b, tt.status, tt.inBody)
			}
			if tt.version && resp.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Fatal("426 without Sec-WebSocket-Version: 13")
			}
		})
	}
	t.Run("HTTP/1.0", func(t *testing.T) {
		nc, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		io.WriteString(nc, "GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		b, _ := io.ReadAll(nc)
		if !strings.HasPrefix(string(b), "HTTP/1.0 400") || !strings.Contains(string(b), "HTTP/1.1") {
			t.Fatalf("HTTP/1.0 handshake: %q", b)
		}
	})
}

func TestOriginAllowlist(t *testing.T) {
	r := router.New(router.WithConfig(quiet), router.WithOrigins("*.example.com"))
	router.WS(r, "/ws", nil, echo[struct{}])
	router.WS(r, "/open", nil, echo[struct{}], router.WithAnyOrigin())
	base := serve(t, r)
	for origin, ok := range map[string]bool{
		"https://app.example.com": true,
		"https://example.org":     false,
		"":                        true,
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		_, resp, err := dial(t, wsURL(base, "/ws"), h)
		if (err == nil) != ok {
			t.Errorf("origin %q: err %v resp %v", origin, err, resp)
		}
	}
	if _, _, err := dial(t, wsURL(base, "/open"), http.Header{"Origin": {"https://anything.test"}}); err != nil {
		t.Fatalf("WithAnyOrigin: %v", err)
	}
}

func TestSubprotocolFromRouteList(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, echo[struct{}], router.WithSubprotocols("v1.chat", "v2.chat"))
	base := serve(t, r)
	d := gorilla.Dialer{Subprotocols: []string{"v2.chat", "v1.chat"}}
	c, _, err := d.Dial(wsURL(base, "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Subprotocol() != "v2.chat" {
		t.Fatalf("negotiated %q, want the client's first choice v2.chat", c.Subprotocol())
	}
}

func TestThirdPartyMiddlewarePlugsIn(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	// chi's middleware, written for net/http, unchanged.
	r.Use(chimw.RequestID, chimw.Recoverer, chimw.NoCache)
	got := make(chan string, 1)
	router.WS(r, "/ws", func(req *http.Request) (string, router.Decision) {
		return chimw.GetReqID(req.Context()), router.Upgrade(nil)
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		got <- s.Value
		return nil
	})
	base := serve(t, r)
	_, resp, err := dial(t, wsURL(base, "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if id := <-got; id == "" {
		t.Fatal("chi's request id did not reach the decision")
	}
	if resp.Header.Get("Cache-Control") == "" {
		t.Fatal("headers set by middleware should be in the 101 response")
	}
}

func TestMiddlewareWritingCancelsUpgrade(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req)
			http.Error(w, "changed my mind", http.StatusTeapot)
		})
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	base := serve(t, r)
	_, resp, err := dial(t, wsURL(base, "/ws"), nil)
	if err == nil || resp.StatusCode != http.StatusTeapot {
		t.Fatalf("got %v %v", err, resp)
	}
}

// A request logger sees the upgrade in the response headers, whether it
// wraps every request or only a group's routes.
func TestRequestLoggerSeesUpgradeOutcome(t *testing.T) {
	for _, where := range []string{"router", "group"} {
		t.Run(where, func(t *testing.T) {
			var buf strings.Builder
			var mu = make(chan struct{}, 1)
			mu <- struct{}{}
			logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
				<-mu
				defer func() { mu <- struct{}{} }()
				return buf.Write(p)
			}), nil))
			r := router.New(router.WithConfig(quiet))
			if where == "router" {
				r.Use(middleware.Log(logger))
				router.WS(r, "/ws", nil, echo[struct{}])
			} else {
				router.WS(r.With(middleware.Log(logger)), "/ws", nil, echo[struct{}])
			}
			base := serve(t, r)
			if _, _, err := dial(t, wsURL(base, "/ws"), nil); err != nil {
				t.Fatal(err)
			}
			// The line is written once ServeHTTP returns, which may be
			// after the client read the 101.
			var line string
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				<-mu
				line = buf.String()
				mu <- struct{}{}
				if strings.Contains(line, "status=") {
					break
				}
			}
			if !strings.Contains(line, "status=101") || !strings.Contains(line, "upgrade=accepted") {
				t.Fatalf("log line %q", line)
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestUsePanicsAfterRoutes(t *testing.T) {
	r := router.New()
	defer func() {
		if recover() == nil {
			t.Fatal("Use after routes in a group should panic")
		}
	}()
	r.Group(func(g *router.Router) {
		g.HandleFunc("/x", func(http.ResponseWriter, *http.Request) {})
		g.Use(middleware.RequestID)
	})
}

func TestWSRouteWithOtherMethodPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("POST ws route should panic")
		}
	}()
	router.WS(router.New(), "POST /ws", nil, echo[struct{}])
}
