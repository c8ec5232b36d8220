package router_test

// Corners of the HTTP side of the upgrade: decisions, middleware around
// them, refusals and their headers, over HTTP/1.1 and HTTP/2, through
// loopback sockets.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// ucRaw sends raw request bytes to base's host and returns the
// responses read until the connection closes or a final one arrives.
func ucRaw(t *testing.T, base, request string) []*http.Response {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, request); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	var out []*http.Response
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		out = append(out, resp)
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			if resp.StatusCode != http.StatusSwitchingProtocols {
				b, _ := io.ReadAll(resp.Body)
				resp.Body = io.NopCloser(strings.NewReader(string(b)))
			}
			return out
		}
	}
}

const ucHandshake = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

// A middleware that answers after the ws route accepted cancels the
// upgrade; its answer is a refusal, and the headers the decision added for
// the 101 (routing.md: "go to the 101 alone"), and the Upgrade and
// Connection the route set for middleware, must not go out with it. Two
// such answers: a middleware's own, and Recover's 500 for a panic after
// the decision.
func TestUpgradeCornerRefusalAfterDecisionCarriesNoDecisionHeaders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		after  func(w http.ResponseWriter)
		status int
		body   string
	}{
		{"middleware answers", func(w http.ResponseWriter) { http.Error(w, "changed my mind", http.StatusTeapot) }, http.StatusTeapot, "changed my mind\n"},
		{"Recover answers a panic", func(http.ResponseWriter) { panic("after the decision") }, http.StatusInternalServerError, "Internal Server Error\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := router.New(router.WithConfig(quiet))
			r.Use(middleware.Recover(quiet.Logger), func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
					next.ServeHTTP(w, req)
					tc.after(w)
				})
			})
			router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
				return struct{}{}, router.Upgrade(http.Header{"X-Room": {"lobby"}})
			}, echo[struct{}])
			base := serve(t, r)
			resp, err := http.DefaultClient.Do(upgradeRequest(t, base+"/ws"))
			if err != nil {
				t.Fatal(err)
			}
			if b := rawBody(t, resp); resp.StatusCode != tc.status || b != tc.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, b, tc.status, tc.body)
			}
			for _, k := range []string{"X-Room", "Upgrade", "Connection"} {
				if v, ok := resp.Header[k]; ok {
					t.Errorf("the %d carries %s: %q", resp.StatusCode, k, v)
				}
			}
		})
	}
}

// earlyHints is middleware that sends 103 Early Hints before the rest of
// the chain runs, as a site does for every page.
func earlyHints(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		next.ServeHTTP(w, req)
	})
}

// A 103 Early Hints sent by middleware before the route is an interim
// response, not an answer (RFC 9110 §15.2; middleware's recorder does not
// count it either): the upgrade goes on, with a 101 over HTTP/1.1 and a
// working socket behind the 200 over HTTP/2. Today the router takes the
// 103 for a written response and drops the upgrade: HTTP/1.1 gets an
// empty 200, and HTTP/2 an empty 200 that tells the client its
// WebSocket is open before the stream ends.
func TestUpgradeCornerEarlyHintsDoNotCancelTheUpgrade(t *testing.T) {
	t.Run("HTTP/1.1", func(t *testing.T) {
		r := router.New(router.WithConfig(quiet))
		r.Use(earlyHints)
		router.WS(r, "/ws", nil, echo[struct{}])
		base := serve(t, r)
		rs := ucRaw(t, base, "GET /ws HTTP/1.1\r\nHost: x\r\n"+ucHandshake+"\r\n")
		var codes []int
		for _, resp := range rs {
			codes = append(codes, resp.StatusCode)
		}
		if len(codes) != 2 || codes[0] != 103 || codes[1] != 101 {
			t.Fatalf("responses %v, want [103 101]", codes)
		}
	})
	t.Run("HTTP/2", func(t *testing.T) {
		r := router.New(router.WithConfig(quiet))
		r.Use(earlyHints)
		router.WS(r, "/ws", nil, echo[struct{}])
		h := h2pServe(t, r, nil)
		s, _ := h2pDial(t, h, "/ws")
		defer s.CloseNow()
		if err := s.WriteText("anyone there?"); err != nil {
			t.Fatalf("write on the socket the 200 opened: %v", err)
		}
		op, p, err := s.ReadMessage()
		if err != nil || string(p) != "anyone there?" {
			t.Fatalf("echo on the socket the 200 opened: %v %q %v", op, p, err)
		}
	})
}

// headerBuffer is middleware whose writer keeps a header map of its own
// until the response starts, as caching and buffering middleware do.
type headerBuffer struct {
	http.ResponseWriter
	h       http.Header
	started bool
}

func (b *headerBuffer) Header() http.Header { return b.h }

func (b *headerBuffer) start() {
	if !b.started {
		b.started = true
		for k, v := range b.h {
			b.ResponseWriter.Header()[k] = v
		}
	}
}

func (b *headerBuffer) WriteHeader(code int) { b.start(); b.ResponseWriter.WriteHeader(code) }

func (b *headerBuffer) Write(p []byte) (int, error) { b.start(); return b.ResponseWriter.Write(p) }

// Upgrade(header) adds header to the 101 whatever writer middleware
// hands the route.
func TestUpgradeCornerDecisionHeadersSurviveHeaderBufferingMiddleware(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(&headerBuffer{ResponseWriter: w, h: http.Header{}}, req)
		})
	})
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(http.Header{"X-Room": {"lobby"}})
	}, echo[struct{}])
	base := serve(t, r)
	_, resp, err := dial(t, wsURL(base, "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Room") != "lobby" {
		t.Fatalf("101 without the decision's header: %v", resp.Header)
	}
}

// A declined upgrade goes on to the HTTP route of the same path; the
// group's middleware, in front of both routes, runs once for the request:
// an upgrade rate limit of one per client lets this first upgrade through
// to the page.
func TestUpgradeCornerDeclineRunsGroupMiddlewareOnce(t *testing.T) {
	var runs atomic.Int32
	r := router.New(router.WithConfig(quiet))
	r.Group(func(r *router.Router) {
		r.Use(middleware.UpgradeRateLimit(0.001, 1), func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				runs.Add(1)
				next.ServeHTTP(w, req)
			})
		})
		r.HandleFunc("GET /feed", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "snapshot") })
		router.WS(r, "/feed", func(*http.Request) (struct{}, router.Decision) {
			return struct{}{}, router.DontUpgrade()
		}, echo[struct{}])
	})
	base := serve(t, r)
	resp, err := http.DefaultClient.Do(upgradeRequest(t, base+"/feed"))
	if err != nil {
		t.Fatal(err)
	}
	if b := rawBody(t, resp); resp.StatusCode != 200 || b != "snapshot" {
		t.Errorf("first declined upgrade: %d %q, want 200 \"snapshot\"", resp.StatusCode, b)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("group middleware ran %d times for one declined upgrade", n)
	}
}

// An extended CONNECT (RFC 8441) to a path without a ws route must not be
// answered 2xx by an HTTP route: a 2xx opens the stream as a WebSocket
// (the reason a declined CONNECT gets 403), and the client would take the
// page for frames.
func TestUpgradeCornerH2ConnectNotOpenedByHTTPRoute(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "<html>the page</html>")
	}))
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, nil)
	resp, b := h2pConnect(t, h.client, h.base+"/page", "websocket", http.Header{"Sec-Websocket-Version": {"13"}})
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		t.Fatalf("extended CONNECT to an HTTP route answered %d %q: the client's WebSocket is open", resp.StatusCode, b)
	}
}

// RFC 9110 §15.5.22: a 426 names the protocol to upgrade to in an Upgrade
// header, for the wrong version as for the missing Upgrade.
func TestUpgradeCornerVersion426NamesWebSocket(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, echo[struct{}])
	base := serve(t, r)
	req := upgradeRequest(t, base+"/ws")
	req.Header.Set("Sec-Websocket-Version", "8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rawBody(t, resp)
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("426 without Upgrade: websocket: %v", resp.Header)
	}
}

// A path with a ws route and an HTTP route for POST supports GET and POST;
// a 405 there lists both (RFC 9110 §15.5.6).
func TestUpgradeCorner405AllowListsTheHTTPRoutesMethods(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.HandleFunc("POST /items", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "created") })
	router.WS(r, "/items", nil, echo[struct{}])
	base := serve(t, r)
	req, _ := http.NewRequest(http.MethodPut, base+"/items", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rawBody(t, resp)
	allow := resp.Header.Get("Allow")
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Fatalf("PUT: %d Allow %q, want 405 allowing GET and POST", resp.StatusCode, allow)
	}
}

// Over HTTP/2 a middleware answer after the decision is a refusal too: it
// must not carry the decision's headers nor Upgrade, which RFC 9113 §8.2.2
// forbids in an HTTP/2 response.
func TestUpgradeCornerH2RefusalAfterDecisionCarriesNoUpgrade(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req)
			http.Error(w, "changed my mind", http.StatusTeapot)
		})
	})
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(http.Header{"X-Room": {"lobby"}})
	}, echo[struct{}])
	h := h2pServe(t, r, nil)
	resp, b := h2pConnect(t, h.client, h.base+"/ws", "websocket", http.Header{"Sec-Websocket-Version": {"13"}})
	if resp.StatusCode != http.StatusTeapot || b != "changed my mind\n" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	for _, k := range []string{"Upgrade", "X-Room"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("the HTTP/2 418 carries %s: %q", k, v)
		}
	}
}

// The handshake's own headers cannot be overridden by the decision
// (configuration.md, AcceptOptions.Header), however the decision spells
// their names: over HTTP/1.1 and over HTTP/2 alike, a client that offered
// no subprotocol gets none.
func TestUpgradeCornerDecisionCannotOverrideHandshakeHeadersInAnySpelling(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(http.Header{
			"sec-websocket-protocol":   {"evil"},
			"sec-websocket-extensions": {"permessage-deflate"},
			"X-Fine":                   {"yes"},
		})
	}, echo[struct{}])
	h := h2pServe(t, r, nil)

	s, resp := h2pDial(t, h, "/ws")
	defer s.CloseNow()
	if resp.Header.Get("X-Fine") != "yes" {
		t.Errorf("HTTP/2: the decision's own header is missing: %v", resp.Header)
	}
	for _, k := range []string{"Sec-Websocket-Protocol", "Sec-Websocket-Extensions"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("HTTP/2: the 200 carries %s %q, which the client never negotiated", k, v)
		}
	}
	h2pEcho(t, s, "still plain frames")

	d := gorilla.Dialer{TLSClientConfig: &tls.Config{RootCAs: h.pool}, HandshakeTimeout: 5 * time.Second}
	c, resp1, err := d.Dial("wss"+strings.TrimPrefix(h.base, "https")+"/ws", nil)
	if err != nil {
		t.Fatalf("HTTP/1.1: %v", err)
	}
	defer c.Close()
	for _, k := range []string{"Sec-Websocket-Protocol", "Sec-Websocket-Extensions"} {
		if v, ok := resp1.Header[k]; ok {
			t.Errorf("HTTP/1.1: the 101 carries %s %q", k, v)
		}
	}
}

// A refusal after the decision by the router itself (503 once it shuts
// down) carries neither the decision's headers nor the Upgrade and
// Connection it set for middleware, but keeps what middleware set.
func TestUpgradeCornerShutdown503CarriesNoDecisionHeaders(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Use(middleware.RequestID)
	var decided atomic.Int32
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		decided.Add(1)
		return struct{}{}, router.Upgrade(http.Header{"X-Room": {"lobby"}})
	}, echo[struct{}])
	base := serve(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	req := upgradeRequest(t, base+"/ws")
	req.Header.Set(middleware.RequestIDHeader, "rid-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := rawBody(t, resp); resp.StatusCode != http.StatusServiceUnavailable || b != "server is shutting down\n" || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("got %d %q %v", resp.StatusCode, b, resp.Header)
	}
	if decided.Load() != 1 || resp.Header.Get(middleware.RequestIDHeader) != "rid-1" {
		t.Errorf("decided %d times; X-Request-ID %q", decided.Load(), resp.Header.Get(middleware.RequestIDHeader))
	}
	for _, k := range []string{"X-Room", "Upgrade", "Connection"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("the 503 carries %s: %q", k, v)
		}
	}
}

// A handshake with a body (Content-Length or chunked) is refused with 400
// before the decision runs (RFC 9110 §7.8: the body would be read as
// frames); the body is consumed as HTTP, so the next request on the same
// connection is served.
func TestUpgradeCornerBodyRefusedAndConnectionGoesOn(t *testing.T) {
	var decided atomic.Int32
	r := router.New(router.WithConfig(quiet))
	r.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		decided.Add(1)
		return struct{}{}, router.Upgrade(nil)
	}, echo[struct{}])
	base := serve(t, r)
	frame := "\x81\x85\x00\x00\x00\x00hello"
	for _, tc := range []struct{ name, header, body string }{
		{"Content-Length", "Content-Length: 11\r\n", frame},
		{"chunked", "Transfer-Encoding: chunked\r\n", "b\r\n" + frame + "\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: x\r\n"+ucHandshake+tc.header+"\r\n"+tc.body+
				"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(nc)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if b := rawBody(t, resp); resp.StatusCode != http.StatusBadRequest || b != "WebSocket handshake must not have a body\n" {
				t.Fatalf("got %d %q", resp.StatusCode, b)
			}
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("the next request on the connection: %v", err)
			}
			if b := rawBody(t, resp); resp.StatusCode != 200 || b != "ok" {
				t.Fatalf("next request: %d %q", resp.StatusCode, b)
			}
		})
	}
	if n := decided.Load(); n != 0 {
		t.Fatalf("the decision ran %d times", n)
	}
}

// bareWriter wraps a ResponseWriter without Unwrap, hiding Hijacker and
// Flusher and every ResponseController method.
type bareWriter struct{ w http.ResponseWriter }

func (b bareWriter) Header() http.Header         { return b.w.Header() }
func (b bareWriter) Write(p []byte) (int, error) { return b.w.Write(p) }
func (b bareWriter) WriteHeader(code int)        { b.w.WriteHeader(code) }

// Middleware that wraps the ResponseWriter without Unwrap does not stop
// the upgrade, over HTTP/1.1 or HTTP/2: the router completes it on the
// writer it was given, with the headers the middleware set.
func TestUpgradeCornerWrapperWithoutUnwrapStillUpgrades(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("X-Wrapped", "yes")
			next.ServeHTTP(bareWriter{w}, req)
		})
	})
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(http.Header{"X-Room": {"lobby"}})
	}, echo[struct{}])
	h := h2pServe(t, r, nil)

	s, resp := h2pDial(t, h, "/ws")
	defer s.CloseNow()
	if resp.Header.Get("X-Wrapped") != "yes" || resp.Header.Get("X-Room") != "lobby" {
		t.Errorf("HTTP/2 200: %v", resp.Header)
	}
	h2pEcho(t, s, "over HTTP/2")

	d := gorilla.Dialer{TLSClientConfig: &tls.Config{RootCAs: h.pool}, HandshakeTimeout: 5 * time.Second}
	c, resp1, err := d.Dial("wss"+strings.TrimPrefix(h.base, "https")+"/ws", nil)
	if err != nil {
		t.Fatalf("HTTP/1.1: %v", err)
	}
	defer c.Close()
	if resp1.Header.Get("X-Wrapped") != "yes" || resp1.Header.Get("X-Room") != "lobby" {
		t.Errorf("HTTP/1.1 101: %v", resp1.Header)
	}
	if err := c.WriteMessage(gorilla.TextMessage, []byte("over HTTP/1.1")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "over HTTP/1.1" {
		t.Fatalf("echo: %q %v", p, err)
	}
}

// Authentication in a group, the stock Bearer: a handshake without a
// token or with a bad one gets 401 with its challenge and a body, before
// the decision, over HTTP/1.1 (coder/websocket) and HTTP/2; with a good
// one the user reaches the decision and the handler's ctx.
func TestUpgradeCornerBearerRefusesBothProtocols(t *testing.T) {
	var decided atomic.Int32
	users := make(chan string, 2)
	r := router.New(router.WithConfig(quiet))
	r.Group(func(r *router.Router) {
		r.Use(middleware.Bearer(func(_ context.Context, token string) (string, error) {
			if token != "s3cret" {
				return "", errors.New("no")
			}
			return "ada", nil
		}))
		router.WS(r, "/ws", func(req *http.Request) (string, router.Decision) {
			decided.Add(1)
			u, _ := middleware.UserFrom(req.Context())
			return u, router.Upgrade(nil)
		}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
			u, _ := middleware.UserFrom(ctx)
			users <- s.Value + "/" + u
			return nil
		})
	})
	h := h2pServe(t, r, nil)
	wss := "wss" + strings.TrimPrefix(h.base, "https") + "/ws"
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.pool}}}
	defer h1.CloseIdleConnections()

	for _, tc := range []struct {
		name, auth, challenge, body string
	}{
		{"no token", "", "Bearer", "unauthorized\n"},
		{"bad token", "Bearer nope", `Bearer error="invalid_token"`, "invalid token\n"},
	} {
		hdr := http.Header{}
		if tc.auth != "" {
			hdr.Set("Authorization", tc.auth)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := coder.Dial(ctx, wss, &coder.DialOptions{HTTPClient: h1, HTTPHeader: hdr})
		cancel()
		if err == nil {
			c.CloseNow()
			t.Fatalf("%s: HTTP/1.1 upgrade accepted", tc.name)
		}
		if b := rawBody(t, resp); resp.StatusCode != http.StatusUnauthorized || b != tc.body || resp.Header.Get("WWW-Authenticate") != tc.challenge {
			t.Errorf("%s over HTTP/1.1: %d %q %q", tc.name, resp.StatusCode, b, resp.Header.Get("WWW-Authenticate"))
		}
		hdr.Set("Sec-Websocket-Version", "13")
		resp, b := h2pConnect(t, h.client, h.base+"/ws", "websocket", hdr)
		if resp.StatusCode != http.StatusUnauthorized || b != tc.body || resp.Header.Get("WWW-Authenticate") != tc.challenge {
			t.Errorf("%s over HTTP/2: %d %q %q", tc.name, resp.StatusCode, b, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if n := decided.Load(); n != 0 {
		t.Fatalf("the decision ran %d times for refused handshakes", n)
	}

	good := http.Header{"Authorization": {"Bearer s3cret"}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := coder.Dial(ctx, wss, &coder.DialOptions{HTTPClient: h1, HTTPHeader: good})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	s, _, err := h.client.Dial(ctx, h.base+"/ws", good)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	for range 2 {
		select {
		case u := <-users:
			if u != "ada/ada" {
				t.Errorf("decision/handler saw user %q, want ada/ada", u)
			}
		case <-ctx.Done():
			t.Fatal("handler did not run")
		}
	}
}

// Middleware that runs the rest of the chain twice for one request makes
// the route decide twice: the connection holds one place among the open
// ones all the same, and gives it back when it ends.
func TestUpgradeCornerRouteRunTwiceHoldsOnePlace(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req)
			next.ServeHTTP(w, req)
		})
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	base := serve(t, r)
	c, _, err := gorilla.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Connections(); n != 1 {
		t.Errorf("Connections() = %d with one socket open, want 1", n)
	}
	_ = c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""))
	_, _, _ = c.ReadMessage()
	c.Close()
	deadline := time.Now().Add(3 * time.Second)
	for r.Connections() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Connections() = %d after the socket closed, want 0", r.Connections())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
