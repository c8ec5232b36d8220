package middleware_test

// Tests of the promises the middleware package documentation, the doc
// comments of its middleware and docs/routing.md, docs/security.md and
// docs/configuration.md make, exercised in front of colibri ws routes over
// real loopback sockets with an independent client (gorilla/websocket).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// guard bounds every wait; it is a failure guard, never a way to
// synchronise.
const guard = 10 * time.Second

var quietLogger = slog.New(slog.DiscardHandler)

// ---- helpers ----

// sink is a slog.Handler that hands every record to the test.
type sink struct{ ch chan map[string]any }

func newSink() (*slog.Logger, *sink) {
	s := &sink{ch: make(chan map[string]any, 256)}
	return slog.New(s), s
}

func (s *sink) Enabled(context.Context, slog.Level) bool { return true }
func (s *sink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *sink) WithGroup(string) slog.Handler            { return s }
func (s *sink) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"level": r.Level.String(), "msg": r.Message}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.Resolve().Any()
		return true
	})
	s.ch <- m
	return nil
}

// next returns the next record whose attributes include match, skipping
// others.
func (s *sink) next(t *testing.T, match map[string]any) map[string]any {
	t.Helper()
	timeout := time.After(guard)
	for {
		select {
		case m := <-s.ch:
			if matches(m, match) {
				return m
			}
		case <-timeout:
			t.Fatalf("no log line with %v within %v", match, guard)
			return nil
		}
	}
}

// empty fails the test if a record is waiting.
func (s *sink) empty(t *testing.T) {
	t.Helper()
	select {
	case m := <-s.ch:
		t.Errorf("unexpected log line %v", m)
	default:
	}
}

func matches(m, match map[string]any) bool {
	for k, v := range match {
		if m[k] != v {
			return false
		}
	}
	return true
}

func wantAttrs(t *testing.T, line map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		got, present := line[k]
		switch {
		case v == nil && present:
			t.Errorf("log line has %s = %v, want it absent (line %v)", k, got, line)
		case v != nil && got != v:
			t.Errorf("log line %s = %v (%T), want %v (%T) (line %v)", k, got, got, v, v, line)
		}
	}
}

// serve runs h on a loopback httptest server until the test ends; a
// router's WebSockets are shut down after the server.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	if r, ok := h.(*router.Router); ok {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			_, _ = r.Shutdown(ctx)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func wsURL(base, path string) string { return "ws" + strings.TrimPrefix(base, "http") + path }

// dial opens a WebSocket with gorilla. On a refused handshake it returns
// the response, whose body gorilla keeps.
func dial(t *testing.T, url string, header http.Header) (*gorilla.Conn, *http.Response, error) {
	t.Helper()
	d := gorilla.Dialer{HandshakeTimeout: guard}
	c, resp, err := d.Dial(url, header)
	if c != nil {
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(guard))
	}
	return c, resp, err
}

// refused dials url and returns the HTTP answer, failing unless the
// handshake was refused.
func refused(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	c, resp, err := dial(t, url, header)
	if err == nil {
		c.Close()
		t.Fatalf("%s: the upgrade was accepted, want it refused", url)
	}
	if !errors.Is(err, gorilla.ErrBadHandshake) || resp == nil {
		t.Fatalf("%s: %v, want an HTTP answer", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// accepted dials url, fails unless the upgrade succeeds, and returns the
// first message and the 101 response. The connection stays open until
// the caller calls the returned func, which completes a closing handshake.
func accepted(t *testing.T, url string, header http.Header) (string, *http.Response, func()) {
	t.Helper()
	c, resp, err := dial(t, url, header)
	if err != nil {
		body := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			body = fmt.Sprintf(" (%d %q)", resp.StatusCode, b)
		}
		t.Fatalf("%s: %v%s", url, err, body)
	}
	_, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("%s: first message: %v", url, err)
	}
	return string(msg), resp, func() {
		t.Helper()
		_ = c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""), time.Now().Add(guard))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				if !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
					t.Errorf("%s: closing handshake: %v", url, err)
				}
				return
			}
		}
	}
}

// who is a ws handler that reports what its context carries, then waits
// for the peer to close.
func who(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
	user, ok := middleware.UserFrom(ctx)
	msg := fmt.Sprintf("user=%q ok=%v id=%s value=%s", user, ok, middleware.RequestIDFrom(ctx), s.Value)
	if err := out.WriteText(ctx, msg); err != nil {
		return err
	}
	for range in.Messages(0) {
	}
	return in.Err()
}

// counting returns a shouldUpgrade that counts its calls and upgrades.
func counting(n *atomic.Int32) router.ShouldUpgrade[string] {
	return func(*http.Request) (string, router.Decision) {
		n.Add(1)
		return "", router.Upgrade(nil)
	}
}

func get(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := (&http.Client{Timeout: guard}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func verifyGood(_ context.Context, token string) (string, error) {
	switch token {
	case "good-token":
		return "alice", nil
	case "anonymous":
		return "", nil
	}
	return "", errors.New("not a token of ours")
}

func newRouter() *router.Router {
	return router.New(router.WithConfig(wsconn.Config{Logger: quietLogger}))
}

// ---- refusals ----

// Promise (middleware doc.go "Middleware and WebSocket routes": "a refusal
// by middleware (401, 403, 429) is a plain HTTP response the client can
// read"; docs/routing.md "Authentication before the upgrade":
// "shouldUpgrade does not run and no socket ever exists"; basicauth.go,
// bearer.go, origin.go, ratelimit.go for the statuses, challenges, bodies
// and Retry-After).
func TestPromiseRefusalsAreReadableHTTPAnswersBeforeTheDecision(t *testing.T) {
	var decisions atomic.Int32
	r := newRouter()
	r.With(middleware.BasicAuth("colibri", middleware.BasicAuthUsers(map[string]string{"alice": "wonder"}))).
		Group(func(r *router.Router) { router.WS(r, "/ws/basic", counting(&decisions), who) })
	r.With(middleware.Bearer(verifyGood)).
		Group(func(r *router.Router) { router.WS(r, "/ws/bearer", counting(&decisions), who) })
	r.With(middleware.Origins("app.example.com")).
		Group(func(r *router.Router) { router.WS(r, "/ws/origins", counting(&decisions), who, router.WithAnyOrigin()) })
	r.With(middleware.UpgradeRateLimit(0.001, 1)).
		Group(func(r *router.Router) { router.WS(r, "/ws/limited", counting(&decisions), who) })
	base := serve(t, r)

	for _, tc := range []struct {
		name      string
		path      string
		header    http.Header
		status    int
		hdr, want string // a response header and its value
		body      string
	}{
		{"Basic, no credentials", "/ws/basic", nil, 401, "WWW-Authenticate", `Basic realm="colibri", charset="UTF-8"`, "unauthorized\n"},
		{"Basic, wrong password", "/ws/basic", http.Header{"Authorization": {"Basic YWxpY2U6d2FuZGVy"}}, 401, "WWW-Authenticate", `Basic realm="colibri", charset="UTF-8"`, "unauthorized\n"},
		{"Bearer, no token", "/ws/bearer", nil, 401, "WWW-Authenticate", "Bearer", "unauthorized\n"},
		{"Bearer, another scheme", "/ws/bearer", http.Header{"Authorization": {"Basic YWxpY2U6d29uZGVy"}}, 401, "WWW-Authenticate", "Bearer", "unauthorized\n"},
		{"Bearer, rejected token", "/ws/bearer", http.Header{"Authorization": {"Bearer forged-secret"}}, 401, "WWW-Authenticate", `Bearer error="invalid_token"`, "invalid token\n"},
		{"Origins, foreign page", "/ws/origins", http.Header{"Origin": {"https://evil.test"}}, 403, "Content-Type", "text/plain; charset=utf-8", ""},
		{"Origins, null", "/ws/origins", http.Header{"Origin": {"null"}}, 403, "Content-Type", "text/plain; charset=utf-8", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := refused(t, wsURL(base, tc.path), tc.header)
			if resp.StatusCode != tc.status || resp.Header.Get(tc.hdr) != tc.want {
				t.Errorf("got %d with %s %q, want %d with %q", resp.StatusCode, tc.hdr, resp.Header.Get(tc.hdr), tc.status, tc.want)
			}
			if tc.body != "" && body != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if strings.Contains(body, "forged-secret") {
				t.Errorf("body %q repeats the token", body)
			}
			if strings.HasPrefix(tc.name, "Origins") && !strings.Contains(body, `"`+tc.header.Get("Origin")+`"`) {
				t.Errorf("body %q does not name the origin", body)
			}
		})
	}
	if n := decisions.Load(); n != 0 {
		t.Fatalf("shouldUpgrade ran %d times behind refusing middleware", n)
	}

	_, _, done := accepted(t, wsURL(base, "/ws/limited"), nil)
	done()
	resp, body := refused(t, wsURL(base, "/ws/limited"), nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1000" ||
		body != "too many WebSocket upgrade requests, retry in 1000s\n" {
		t.Errorf("over the limit: %d Retry-After %q body %q, want 429, 1000 and the plain-text body",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := decisions.Load(); n != 1 {
		t.Fatalf("shouldUpgrade ran %d times, want once (the accepted upgrade)", n)
	}
	if n := r.Connections(); n > 1 {
		t.Fatalf("%d WebSockets open; refusals must open none", n)
	}
}

// ---- values reach the handler ----

// Promise (middleware doc.go: values middleware put in the request
// context reach the WebSocket handler, UserFrom and RequestIDFrom read
// them there; docs/routing.md "The two-phase upgrade": "Headers set by
// middleware go out with the 101, such as X-Request-ID"; requestid.go:
// a sane incoming id is kept, otherwise 16 hex digits; bearer.go: "A nil
// error accepts the token, even with an empty user name").
func TestPromiseMiddlewareValuesReachTheWebSocketHandler(t *testing.T) {
	r := newRouter()
	r.Use(middleware.RequestID)
	r.With(middleware.Bearer(verifyGood)).
		Group(func(r *router.Router) { router.WS(r, "/ws/bearer", nil, who) })
	r.With(middleware.BasicAuth("colibri", middleware.BasicAuthUsers(map[string]string{"alice": "wonder"}))).
		Group(func(r *router.Router) { router.WS(r, "/ws/basic", nil, who) })
	base := serve(t, r)

	msg, resp, done := accepted(t, wsURL(base, "/ws/bearer"), http.Header{
		"Authorization": {"Bearer good-token"}, "X-Request-Id": {"abc-123"},
	})
	done()
	if want := `user="alice" ok=true id=abc-123 value=`; msg != want {
		t.Errorf("handler saw %s, want %s", msg, want)
	}
	if got := resp.Header.Get(middleware.RequestIDHeader); got != "abc-123" {
		t.Errorf("101 carries X-Request-ID %q, want abc-123", got)
	}

	msg, resp, done = accepted(t, wsURL(base, "/ws/basic"), http.Header{
		"Authorization": {"Basic YWxpY2U6d29uZGVy"}, "X-Request-Id": {"has space"},
	})
	done()
	id := resp.Header.Get(middleware.RequestIDHeader)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
		t.Errorf("101 carries X-Request-ID %q, want 16 new hex digits for an insane one", id)
	}
	if want := `user="alice" ok=true id=` + id + ` value=`; msg != want {
		t.Errorf("handler saw %s, want %s", msg, want)
	}

	msg, _, done = accepted(t, wsURL(base, "/ws/bearer"), http.Header{"Authorization": {"Bearer anonymous"}})
	done()
	if !strings.HasPrefix(msg, `user="" ok=true id=`) {
		t.Errorf("a token accepted with an empty user name: handler saw %s, want user \"\" ok=true", msg)
	}
}

// Promise (bearer.go BearerOptions.QueryParam and docs/security.md
// "Authentication before the upgrade": the parameter is removed from the
// URL later handlers see, r.RequestURI still holds it, Log never logs the
// query string, and error bodies never repeat the token).
func TestPromiseQueryTokenIsKeptOutOfTheURLAndTheLog(t *testing.T) {
	logger, logs := newSink()
	r := newRouter()
	r.Use(middleware.Log(logger))
	r.With(middleware.BearerWith(verifyGood, middleware.BearerOptions{QueryParam: "access_token"})).Group(func(r *router.Router) {
		router.WS(r, "/ws/q", func(req *http.Request) (string, router.Decision) {
			return req.URL.RawQuery + " | " + req.RequestURI, router.Upgrade(nil)
		}, who)
	})
	base := serve(t, r)

	msg, _, done := accepted(t, wsURL(base, "/ws/q?room=a&access_token=good-token&b=2"), nil)
	done()
	if want := `user="alice" ok=true id= value=room=a&b=2 | /ws/q?room=a&access_token=good-token&b=2`; msg != want {
		t.Errorf("the route saw %s, want %s", msg, want)
	}
	line := logs.next(t, map[string]any{"msg": "request"})
	wantAttrs(t, line, map[string]any{"path": "/ws/q", "upgrade": "accepted"})
	if s := fmt.Sprint(line); strings.Contains(s, "good-token") {
		t.Errorf("the log line holds the token: %s", s)
	}

	resp, body := refused(t, wsURL(base, "/ws/q?access_token=forged-secret"), nil)
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "forged-secret") {
		t.Errorf("rejected query token: %d %q", resp.StatusCode, body)
	}
	line = logs.next(t, map[string]any{"msg": "request"})
	if s := fmt.Sprint(line); strings.Contains(s, "forged-secret") {
		t.Errorf("the log line holds the token: %s", s)
	}
}

// ---- Log ----

// Promise (log.go Log doc; middleware doc.go: "Log can tell an accepted
// upgrade from a refused one by what the chain left behind"; "middleware
// here never meets a hijacked connection"): over real sockets, an
// accepted upgrade is logged 101 "accepted" at INFO before the session
// ends (the session is not counted), refusals by the decision or by
// middleware are "refused" at WARN, a plain request has no upgrade
// attribute, and a handler that hijacks by itself is "hijacked" with
// status 0.
func TestPromiseLogOverRealSockets(t *testing.T) {
	logger, logs := newSink()
	r := newRouter()
	r.Use(middleware.RequestID, middleware.Log(logger),
		middleware.UpgradeRateLimitWith(0.001, 1, middleware.RateLimitOptions{
			ClientIP: func(r *http.Request) string { return r.Header.Get("X-Client") },
		}))
	r.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	var legacy sync.WaitGroup
	r.HandleFunc("GET /legacy", func(w http.ResponseWriter, req *http.Request) {
		c, err := (&gorilla.Upgrader{}).Upgrade(w, req, nil)
		if err != nil {
			t.Errorf("gorilla's upgrade behind Log: %v", err)
			return
		}
		legacy.Go(func() {
			defer c.Close()
			_ = c.WriteMessage(gorilla.TextMessage, []byte("legacy"))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		})
	})
	router.WS(r, "/ws", func(req *http.Request) (string, router.Decision) {
		if req.URL.Query().Has("reject") {
			return "", router.Reject(http.StatusBadRequest, nil, "no")
		}
		return "", router.Upgrade(nil)
	}, who)
	base := serve(t, r)

	t.Run("accepted", func(t *testing.T) {
		c, _, err := dial(t, wsURL(base, "/ws"), http.Header{"X-Client": {"a"}, "X-Request-Id": {"log-1"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		// The session is open and stays open: the line is there already.
		line := logs.next(t, map[string]any{"msg": "request", "path": "/ws"})
		wantAttrs(t, line, map[string]any{
			"level": "INFO", "method": "GET", "status": int64(101), "upgrade": "accepted",
			"bytes": int64(0), "remote": c.LocalAddr().String(), "request_id": "log-1", "panic": nil,
		})
		if _, ok := line["duration"].(time.Duration); !ok {
			t.Errorf("duration %v", line["duration"])
		}
		c.Close()
	})
	t.Run("refused by the decision", func(t *testing.T) {
		refused(t, wsURL(base, "/ws?reject"), http.Header{"X-Client": {"b"}})
		wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/ws"}),
			map[string]any{"level": "WARN", "status": int64(400), "upgrade": "refused"})
	})
	t.Run("refused by middleware", func(t *testing.T) {
		refused(t, wsURL(base, "/ws"), http.Header{"X-Client": {"a"}})
		wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/ws"}),
			map[string]any{"level": "WARN", "status": int64(429), "upgrade": "refused"})
	})
	t.Run("plain request", func(t *testing.T) {
		get(t, base+"/health?token=s3cret", nil)
		wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/health"}),
			map[string]any{"level": "INFO", "status": int64(200), "bytes": int64(2), "upgrade": nil})
	})
	t.Run("hijacked by the handler", func(t *testing.T) {
		c, _, err := dial(t, wsURL(base, "/legacy"), http.Header{"X-Client": {"c"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "legacy" {
			t.Fatalf("legacy server: %q %v", msg, err)
		}
		wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/legacy"}),
			map[string]any{"level": "INFO", "status": int64(0), "upgrade": "hijacked"})
		c.Close()
		legacy.Wait()
	})
}

// Promise (middleware doc.go "Order": "Log outside Recover so that Log's
// line records the 500 Recover writes for a panic"; log.go: "Place Log
// after RequestID and before Recover, so that its line has the id and
// sees the 500 that Recover writes"). The documented stack, RequestID,
// Log(nil), Recover(nil), as in docs/routing.md and README.md.
func TestPromiseRecommendedOrderLogSeesRecoversStatus(t *testing.T) {
	logger, logs := newSink()
	r := newRouter()
	r.Use(middleware.RequestID, middleware.Log(logger), middleware.Recover(quietLogger))
	r.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	router.WS(r, "/ws", func(*http.Request) (string, router.Decision) { panic("decision kaboom") }, who)
	base := serve(t, r)

	resp, body := get(t, base+"/panic", http.Header{"X-Request-Id": {"p-1"}})
	if resp.StatusCode != http.StatusInternalServerError || body != "Internal Server Error\n" {
		t.Fatalf("GET /panic: %d %q, want Recover's 500", resp.StatusCode, body)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/panic"}),
		map[string]any{"status": int64(500), "request_id": "p-1", "level": "ERROR"})

	resp, _ = refused(t, wsURL(base, "/ws"), nil)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("upgrade whose decision panics: %d, want 500", resp.StatusCode)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/ws"}),
		map[string]any{"status": int64(500), "level": "ERROR"})
}

// ---- Recover ----

// Promise (recover.go: a panic of the request goroutine becomes one error
// line, with value, stack, method, path and request id, and a 500; "A 500
// never carries the Upgrade and Connection fields a ws route may have set
// before the panic, so the router cannot mistake it for an accepted
// upgrade").
func TestPromiseRecoverAnswers500NotAnUpgrade(t *testing.T) {
	logger, logs := newSink()
	var sessions atomic.Int32
	r := newRouter()
	r.Use(middleware.RequestID, middleware.Recover(logger))
	panicAfter := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req) // the ws route records its Upgrade
			panic("after the decision")
		})
	}
	r.With(panicAfter).Group(func(r *router.Router) {
		router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
			sessions.Add(1)
			return nil
		})
	})
	base := serve(t, r)

	resp, body := refused(t, wsURL(base, "/ws"), http.Header{"X-Request-Id": {"rid-9"}})
	if resp.StatusCode != http.StatusInternalServerError || body != "Internal Server Error\n" {
		t.Errorf("got %d %q, want 500 Internal Server Error", resp.StatusCode, body)
	}
	if resp.Header.Get("Upgrade") != "" || strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
		t.Errorf("the 500 carries upgrade fields: %v", resp.Header)
	}
	line := logs.next(t, map[string]any{"msg": "panic"})
	wantAttrs(t, line, map[string]any{"level": "ERROR", "panic": "after the decision", "method": "GET", "path": "/ws", "request_id": "rid-9"})
	if s, _ := line["stack"].(string); !strings.Contains(s, "goroutine") {
		t.Errorf("stack %q", s)
	}
	if n := sessions.Load() + int32(r.Connections()); n != 0 {
		t.Errorf("a WebSocket was served after the panic")
	}
}

// Promise (recover.go: "Recover sees panics of the request goroutine
// only: a WebSocket session runs after the middleware chain has returned,
// and colibri recovers panics there itself"; docs/routing.md "Panics in
// the session are colibri's": the connection closes with 1011 and the
// process goes on).
func TestPromiseSessionPanicsAreColibrisNotRecovers(t *testing.T) {
	logger, logs := newSink()
	r := newRouter()
	r.Use(middleware.Recover(logger))
	router.WS(r, "/ws/panic", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		panic("in the session")
	})
	router.WS(r, "/ws/ok", nil, who)
	base := serve(t, r)

	for range 2 {
		c, _, err := dial(t, wsURL(base, "/ws/panic"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseInternalServerErr) {
			t.Fatalf("a panicking session ended with %v, want close 1011", err)
		}
		c.Close()
	}
	_, _, done := accepted(t, wsURL(base, "/ws/ok"), nil)
	done()
	logs.empty(t)
}

// Promise (middleware doc.go "Order", log.go, recover.go,
// docs/configuration.md "Middleware": Log and Recover given a nil logger
// log to the application's, app.Config.Logger, which the app carries in
// every request's context, also when the App is served by a server of
// your own).
func TestPromiseNilLoggerIsTheApplicationsLogger(t *testing.T) {
	logger, logs := newSink()
	r := newRouter()
	r.Use(middleware.Log(nil), middleware.Recover(nil))
	r.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("app kaboom") })
	router.WS(r, "/ws", nil, who)
	a := app.New(r, app.Config{Logger: logger})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		_, _ = a.Shutdown(ctx)
	})
	base := serve(t, a)

	resp, _ := get(t, base+"/panic", nil)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("GET /panic: %d", resp.StatusCode)
	}
	logs.next(t, map[string]any{"msg": "panic", "panic": "app kaboom", "path": "/panic"})
	_, _, done := accepted(t, wsURL(base, "/ws"), nil)
	logs.next(t, map[string]any{"msg": "request", "path": "/ws", "upgrade": "accepted"})
	done()
}

// ---- Origins ----

// Promise (docs/routing.md "Origin check": "middleware.Origins makes the
// same check, with the same function, on every request that carries an
// Origin"; docs/security.md: "a pattern means the same in both places";
// origin.go: no Origin passes, the same host passes, "null", malformed
// origins and other schemes get 403, plain requests are guarded too).
func TestPromiseOriginsAgreesWithTheWSRoutesCheck(t *testing.T) {
	patterns := []string{"*.example.com", "localhost:*"}
	r := newRouter()
	router.WS(r, "/ws/route", nil, who, router.WithOrigins(patterns...))
	r.With(middleware.Origins(patterns...)).Group(func(r *router.Router) {
		router.WS(r, "/ws/mw", nil, who, router.WithAnyOrigin())
		r.HandleFunc("POST /form", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "posted") })
	})
	base := serve(t, r)
	host := strings.TrimPrefix(base, "http://")

	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + host, true},
		{"https://app.example.com", true},
		{"https://a.b.example.com", true},
		{"https://example.com", false},
		{"http://localhost", true},
		{"http://localhost:3000", true},
		{"https://app.example.com:8443", false},
		{"null", false},
		{"chrome-extension://app.example.com", false},
		{"https://app.example.com/path", false},
		{"https://evil.test", false},
	} {
		var h http.Header
		if tc.origin != "" {
			h = http.Header{"Origin": {tc.origin}}
		}
		for _, path := range []string{"/ws/route", "/ws/mw"} {
			c, resp, err := dial(t, wsURL(base, path), h)
			switch {
			case tc.ok && err != nil:
				t.Errorf("%s, Origin %q: %v, want it accepted", path, tc.origin, err)
			case !tc.ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden):
				t.Errorf("%s, Origin %q: %v, want 403", path, tc.origin, err)
			}
			if c != nil {
				c.Close()
			}
		}
	}

	post := func(origin string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/form", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := (&http.Client{Timeout: guard}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("https://evil.test"); code != http.StatusForbidden {
		t.Errorf("cross-origin form post: %d, want 403", code)
	}
	if code := post(""); code != http.StatusOK {
		t.Errorf("form post without Origin: %d, want 200", code)
	}
}

// ---- UpgradeRateLimit ----

// Promise (ratelimit.go UpgradeRateLimitWith doc; docs/routing.md
// "Connection limit"; docs/security.md "Limits"): a token bucket per
// client IP for upgrade requests; plain requests pass untouched and cost
// nothing; a token is taken whether or not the upgrade is then accepted;
// one middleware value is one table, shared by every route it covers,
// and each call makes a table of its own.
func TestPromiseUpgradeRateLimitOverRealSockets(t *testing.T) {
	shared := middleware.UpgradeRateLimit(0.001, 2)
	r := newRouter()
	r.With(shared).Group(func(r *router.Router) {
		router.WS(r, "/ws/a", nil, who)
		r.HandleFunc("GET /plain", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "plain") })
	})
	r.With(shared).Group(func(r *router.Router) { router.WS(r, "/ws/b", nil, who) })
	r.With(middleware.UpgradeRateLimit(0.001, 1)).Group(func(r *router.Router) {
		router.WS(r, "/ws/refusing", func(*http.Request) (string, router.Decision) {
			return "", router.Reject(http.StatusForbidden, nil, "not you")
		}, who)
	})
	r.With(middleware.UpgradeRateLimit(0.001, 2)).Group(func(r *router.Router) { router.WS(r, "/ws/own", nil, who) })
	base := serve(t, r)

	plain := func() {
		t.Helper()
		for range 3 {
			resp, body := get(t, base+"/plain", nil)
			if resp.StatusCode != http.StatusOK || body != "plain" || resp.Header.Get("Retry-After") != "" {
				t.Fatalf("plain request: %d %q %v", resp.StatusCode, body, resp.Header)
			}
		}
	}
	plain() // costs no token
	// Two upgrades from 127.0.0.1, from two client ports, on two routes:
	// one bucket.
	_, _, done := accepted(t, wsURL(base, "/ws/a"), nil)
	done()
	_, _, done = accepted(t, wsURL(base, "/ws/b"), nil)
	done()
	resp, _ := refused(t, wsURL(base, "/ws/a"), nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1000" {
		t.Fatalf("third upgrade: %d Retry-After %q, want 429 and 1000", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	plain() // still served with the bucket empty

	resp, _ = refused(t, wsURL(base, "/ws/refusing"), nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refused by the decision: %d", resp.StatusCode)
	}
	resp, _ = refused(t, wsURL(base, "/ws/refusing"), nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after a refused upgrade: %d, want 429: the refused one took the token", resp.StatusCode)
	}

	_, _, done = accepted(t, wsURL(base, "/ws/own"), nil) // a table of its own
	done()
}

// Promise (middleware doc.go "Rate limiting" and ratelimit.go: "without a
// background goroutine", "no goroutine is started"; docs/security.md
// "Limits": "bounded table, no goroutine").
func TestPromiseUpgradeRateLimitStartsNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	mw := middleware.UpgradeRateLimitWith(1000, 5, middleware.RateLimitOptions{MaxClients: 10})
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	for i := range 100 {
		req := httptest.NewRequest(http.MethodGet, "/ws", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.RemoteAddr = fmt.Sprintf("198.51.100.%d:1", i)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	runtime.KeepAlive(h)
}

// Promise (middleware doc.go "Order": "Origins and UpgradeRateLimit before
// authentication, so that foreign pages and floods are turned away before
// a verifier spends time on them"; ratelimit.go: "put UpgradeRateLimit
// before authentication to slow down guessing as well").
func TestPromiseRecommendedOrderSparesTheVerifier(t *testing.T) {
	var verified atomic.Int32
	verify := func(ctx context.Context, token string) (string, error) {
		verified.Add(1)
		return verifyGood(ctx, token)
	}
	r := newRouter()
	r.Use(middleware.RequestID, middleware.Recover(quietLogger), middleware.Log(quietLogger),
		middleware.Origins(), middleware.UpgradeRateLimit(0.001, 1), middleware.Bearer(verify))
	router.WS(r, "/ws", nil, who)
	base := serve(t, r)
	auth := http.Header{"Authorization": {"Bearer good-token"}}

	foreign := auth.Clone()
	foreign.Set("Origin", "https://evil.test")
	if resp, _ := refused(t, wsURL(base, "/ws"), foreign); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign page: %d, want 403", resp.StatusCode)
	}
	msg, _, done := accepted(t, wsURL(base, "/ws"), auth)
	done()
	if !strings.HasPrefix(msg, `user="alice"`) {
		t.Fatalf("handler saw %s", msg)
	}
	if resp, _ := refused(t, wsURL(base, "/ws"), auth); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("flood: %d, want 429", resp.StatusCode)
	}
	if n := verified.Load(); n != 1 {
		t.Fatalf("the verifier ran %d times, want once (only for the request that got through)", n)
	}
}
