package router_test

// Tests of what docs/routing.md, docs/configuration.md and docs/security.md
// promise about the router, each through a loopback socket and a client
// colibri does not share code with.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// Every refusal in the table of routing.md (Upgrade decisions) comes with
// its status, its extra header and a plain-text body saying what was
// wrong, before the decision function runs.
func TestPromiseHandshakeRefusalsBeforeTheDecision(t *testing.T) {
	var decided atomic.Int32
	r := router.New(router.WithConfig(quiet), router.WithOrigins("*.example.com"))
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		decided.Add(1)
		return struct{}{}, router.Upgrade(nil)
	}, echo[struct{}])
	base := serve(t, r)

	for _, tc := range []struct {
		name   string
		method string
		edit   func(h http.Header)
		status int
		body   string
		header [2]string // an extra header the answer must carry
	}{
		{"POST", http.MethodPost, nil, 405,
			"WebSocket handshake must use GET, not POST", [2]string{"Allow", "GET"}},
		{"no Upgrade: websocket", "", func(h http.Header) { h.Set("Upgrade", "h2c") }, 426,
			"this endpoint speaks WebSocket only: send Upgrade: websocket", [2]string{"Sec-WebSocket-Version", "13"}},
		{"no Connection: Upgrade", "", func(h http.Header) { h.Set("Connection", "keep-alive") }, 400,
			"WebSocket handshake needs Connection: Upgrade", [2]string{}},
		{"version 8", "", func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, 426,
			`unsupported Sec-WebSocket-Version "8": this server speaks version 13`, [2]string{"Sec-WebSocket-Version", "13"}},
		{"no version", "", func(h http.Header) { h.Del("Sec-Websocket-Version") }, 426,
			"WebSocket handshake needs a Sec-WebSocket-Version header: this server speaks version 13", [2]string{"Sec-WebSocket-Version", "13"}},
		{"no key", "", func(h http.Header) { h.Del("Sec-Websocket-Key") }, 400,
			"WebSocket handshake needs exactly one Sec-WebSocket-Key header", [2]string{}},
		{"repeated key", "", func(h http.Header) { h.Add("Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") }, 400,
			"WebSocket handshake needs exactly one Sec-WebSocket-Key header", [2]string{}},
		{"key of 15 bytes", "", func(h http.Header) { h.Set("Sec-Websocket-Key", "AAAAAAAAAAAAAAAAAAAA") }, 400,
			"Sec-WebSocket-Key must be 16 bytes in base64", [2]string{}},
		{"key not base64", "", func(h http.Header) { h.Set("Sec-Websocket-Key", "!!!!!!!!!!!!!!!!!!!!!!!!") }, 400,
			"Sec-WebSocket-Key must be 16 bytes in base64", [2]string{}},
		{"origin of another host", "", func(h http.Header) { h.Set("Origin", "https://evil.test") }, 403,
			`origin "https://evil.test" is not allowed here`, [2]string{}},
		{"origin with another scheme", "", func(h http.Header) { h.Set("Origin", "ftp://app.example.com") }, 403,
			`malformed Origin header "ftp://app.example.com"`, [2]string{}},
		{"origin with a path", "", func(h http.Header) { h.Set("Origin", "https://app.example.com/page") }, 403,
			`malformed Origin header "https://app.example.com/page"`, [2]string{}},
		{"origin with a query", "", func(h http.Header) { h.Set("Origin", "https://app.example.com?x=1") }, 403,
			`malformed Origin header "https://app.example.com?x=1"`, [2]string{}},
		{"origin with a user", "", func(h http.Header) { h.Set("Origin", "https://eve@app.example.com") }, 403,
			`malformed Origin header "https://eve@app.example.com"`, [2]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := upgradeRequest(t, base+"/ws")
			if tc.method != "" {
				req.Method = tc.method
			}
			if tc.edit != nil {
				tc.edit(req.Header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b := rawBody(t, resp)
			if resp.StatusCode != tc.status || b != tc.body+"\n" {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, b, tc.status, tc.body+"\n")
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q, want plain text", ct)
			}
			if k := tc.header[0]; k != "" && resp.Header.Get(k) != tc.header[1] {
				t.Errorf("%s: %q, want %q", k, resp.Header.Get(k), tc.header[1])
			}
		})
	}
	if n := decided.Load(); n != 0 {
		t.Fatalf("the decision ran %d times for refused handshakes", n)
	}
}

// The origin rules of security.md: no Origin, the same host (default
// ports ignored, case ignored) and WithOrigins patterns pass; a pattern
// "*.example.com" allows subdomains, not example.com itself.
func TestPromiseOriginRules(t *testing.T) {
	r := router.New(router.WithConfig(quiet), router.WithOrigins("*.example.com", "localhost:*"))
	router.WS(r, "/ws", nil, echo[struct{}])
	router.WS(r, "/feed", nil, echo[struct{}], router.WithAnyOrigin())
	base := serve(t, r)

	for _, tc := range []struct {
		path, origin, host string // host "" is the server's address
		ok                 bool
	}{
		{"/ws", "", "", true},
		{"/ws", "http://chat.test", "chat.test", true},
		{"/ws", "https://chat.test", "chat.test:443", true},
		{"/ws", "http://chat.test:80", "chat.test", true},
		{"/ws", "https://CHAT.test", "chat.test", true},
		{"/ws", "https://chat.test:8443", "chat.test", false},
		{"/ws", "https://chat.test", "other.test", false},
		{"/ws", "https://app.example.com", "", true},
		{"/ws", "https://a.b.example.com", "", true},
		{"/ws", "https://example.com", "", false},
		{"/ws", "https://example.com.evil.test", "", false},
		{"/ws", "http://localhost:3000", "", true},
		{"/ws", "null", "", false},
		{"/feed", "https://anyone.test", "", true},
		{"/feed", "null", "", true}, // no check at all on this route
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		if tc.host != "" {
			h.Set("Host", tc.host) // gorilla puts it in the request's Host
		}
		c, resp, err := gorilla.DefaultDialer.Dial(wsURL(base, tc.path), h)
		if c != nil {
			c.Close()
		}
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s Origin %q Host %q: refused (%v), want accepted", tc.path, tc.origin, tc.host, err)
		case !tc.ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden):
			t.Errorf("%s Origin %q Host %q: %v, want 403", tc.path, tc.origin, tc.host, err)
		}
	}
}

// "localhost:*" is documented as any port; an origin on its scheme's
// default port (http://localhost, http://localhost:80) has a port too.
func TestPromiseOriginPatternAnyPortIncludesTheDefaultPort(t *testing.T) {
	r := router.New(router.WithConfig(quiet), router.WithOrigins("localhost:*"))
	router.WS(r, "/ws", nil, echo[struct{}])
	base := serve(t, r)
	for _, origin := range []string{"http://localhost", "http://localhost:80", "https://localhost:443"} {
		c, resp, err := gorilla.DefaultDialer.Dial(wsURL(base, "/ws"), http.Header{"Origin": {origin}})
		if c != nil {
			c.Close()
		}
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Errorf(`WithOrigins("localhost:*"), Origin %q: refused with %d, want accepted`, origin, status)
		}
	}
}

// Options given to WS replace the router's default of the same kind; a
// client that offers none of the route's subprotocols still gets its
// WebSocket, without a subprotocol.
func TestPromiseRouteOptionsReplaceRouterDefaults(t *testing.T) {
	r := router.New(router.WithConfig(quiet), router.WithSubprotocols("old"), router.WithOrigins("*.old.test"))
	proto := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return out.WriteText(ctx, "["+s.Subprotocol()+"]")
	}
	router.WS(r, "/default", nil, proto)
	router.WS(r, "/own", nil, proto, router.WithSubprotocols("new"), router.WithOrigins("*.new.test"))
	base := serve(t, r)

	for _, tc := range []struct {
		path    string
		offer   []string
		origin  string
		want    string // the handler's "[subprotocol]", or "403"
		replied string // the subprotocol in the 101
	}{
		{"/default", []string{"old"}, "", "[old]", "old"},
		{"/default", []string{"other"}, "", "[]", ""},
		{"/default", nil, "https://a.old.test", "[]", ""},
		{"/own", []string{"old", "new"}, "", "[new]", "new"},
		{"/own", []string{"old"}, "", "[]", ""},
		{"/own", nil, "https://a.new.test", "[]", ""},
		{"/own", nil, "https://a.old.test", "403", ""},
	} {
		d := gorilla.Dialer{Subprotocols: tc.offer}
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, resp, err := d.Dial(wsURL(base, tc.path), h)
		if tc.want == "403" {
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s Origin %s: %v, want 403", tc.path, tc.origin, err)
			}
			if c != nil {
				c.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("%s offering %q from %q: %v", tc.path, tc.offer, tc.origin, err)
			continue
		}
		_, p, err := c.ReadMessage()
		c.Close()
		if err != nil || string(p) != tc.want || c.Subprotocol() != tc.replied {
			t.Errorf("%s offering %q: handler saw %q (%v), 101 named %q; want %q and %q",
				tc.path, tc.offer, p, err, c.Subprotocol(), tc.want, tc.replied)
		}
	}
}

// WithOrigins and WithAnyOrigin are one policy: a route's own replaces the
// router's, whichever way round.
func TestPromiseOriginPolicyIsOneOption(t *testing.T) {
	open := router.New(router.WithConfig(quiet), router.WithAnyOrigin())
	router.WS(open, "/any", nil, echo[struct{}])
	router.WS(open, "/listed", nil, echo[struct{}], router.WithOrigins("*.friend.test"))
	listed := router.New(router.WithConfig(quiet), router.WithOrigins("*.friend.test"))
	router.WS(listed, "/any", nil, echo[struct{}], router.WithAnyOrigin())
	router.WS(listed, "/listed", nil, echo[struct{}])
	for _, tc := range []struct {
		name   string
		base   string
		path   string
		origin string
		want   int
	}{
		{"router any, route default", serve(t, open), "/any", "https://evil.test", http.StatusSwitchingProtocols},
		{"router any, route listed", serve(t, open), "/listed", "https://evil.test", http.StatusForbidden},
		{"router any, route listed, friend", serve(t, open), "/listed", "https://a.friend.test", http.StatusSwitchingProtocols},
		{"router listed, route any", serve(t, listed), "/any", "https://evil.test", http.StatusSwitchingProtocols},
		{"router listed, route default", serve(t, listed), "/listed", "https://evil.test", http.StatusForbidden},
	} {
		c, resp, _ := gorilla.DefaultDialer.Dial(wsURL(tc.base, tc.path), http.Header{"Origin": {tc.origin}})
		if c != nil {
			c.Close()
		}
		if resp == nil || resp.StatusCode != tc.want {
			t.Errorf("%s: Origin %s answered %v, want %d", tc.name, tc.origin, resp, tc.want)
		}
	}
}

// Reject with a status outside 400–599 answers 403, with the decision's
// body and a final newline.
func TestPromiseRejectOutsideErrorRangeBecomes403(t *testing.T) {
	statuses := map[string]int{"0": 0, "101": 101, "200": 200, "302": 302, "399": 399, "600": 600, "400": 400, "599": 599}
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws/{status}", func(req *http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Reject(statuses[req.PathValue("status")], nil, "not you")
	}, echo[struct{}])
	base := serve(t, r)
	for s, status := range statuses {
		want := status
		if status < 400 || status > 599 {
			want = http.StatusForbidden
		}
		resp, err := http.DefaultClient.Do(upgradeRequest(t, base+"/ws/"+s))
		if err != nil {
			t.Fatal(err)
		}
		if b := rawBody(t, resp); resp.StatusCode != want || b != "not you\n" {
			t.Errorf("Reject(%d): %d %q, want %d %q", status, resp.StatusCode, b, want, "not you\n")
		}
	}
}

// The middleware rules of routing.md: the first listed is the outermost;
// top-level middleware sees every request (404s and upgrades too); group
// middleware sees only requests of its routes; groups nest and inherit;
// With adds middleware inline; Use on the serving router panics, and so do
// invalid or conflicting patterns.
func TestPromiseMiddlewareOrderAndScope(t *testing.T) {
	var mu sync.Mutex
	var trace []string
	note := func(s string) {
		mu.Lock()
		trace = append(trace, s)
		mu.Unlock()
	}
	mw := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				note(name + ">")
				next.ServeHTTP(w, req)
				note("<" + name)
			})
		}
	}
	answer := func(name string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) { note(name); io.WriteString(w, name) }
	}
	r := router.New(router.WithConfig(quiet))
	r.Use(mw("A"), mw("B"))
	r.HandleFunc("GET /plain", answer("plain"))
	r.Group(func(g *router.Router) {
		g.Use(mw("G"))
		g.HandleFunc("GET /g", answer("g"))
		router.WS(g, "/g/ws", nil, echo[struct{}])
		g.Group(func(n *router.Router) {
			n.Use(mw("N"))
			n.HandleFunc("GET /g/n", answer("n"))
		})
	})
	r.With(mw("W")).HandleFunc("GET /w", answer("w"))
	base := serve(t, r)

	for _, tc := range []struct {
		method, path string
		status       int
		want         string
	}{
		{"GET", "/plain", 200, "A> B> plain <B <A"},
		{"GET", "/missing", 404, "A> B> <B <A"},
		{"GET", "/g", 200, "A> B> G> g <G <B <A"},
		{"POST", "/g", 405, "A> B> <B <A"},
		{"GET", "/g/n", 200, "A> B> G> N> n <N <G <B <A"},
		{"GET", "/w", 200, "A> B> W> w <W <B <A"},
	} {
		mu.Lock()
		trace = nil
		mu.Unlock()
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rawBody(t, resp)
		// net/http sends the response once the whole chain has returned,
		// so the trace is complete.
		mu.Lock()
		got := strings.Join(trace, " ")
		mu.Unlock()
		if resp.StatusCode != tc.status || got != tc.want {
			t.Errorf("%s %s: %d through %q, want %d through %q", tc.method, tc.path, resp.StatusCode, got, tc.status, tc.want)
		}
	}

	// An upgrade goes through the top-level and the group middleware; the
	// 101 is written after the chain returned.
	mu.Lock()
	trace = nil
	mu.Unlock()
	if _, _, err := dial(t, wsURL(base, "/g/ws"), nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := strings.Join(trace, " ")
	mu.Unlock()
	if got != "A> B> G> <G <B <A" {
		t.Errorf("upgrade went through %q", got)
	}

	mustPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", what)
			}
		}()
		f()
	}
	mustPanic("Use on the top-level router after it served", func() { r.Use(mw("late")) })
	mustPanic("a conflicting pattern", func() { r.HandleFunc("GET /plain", answer("again")) })
	mustPanic("an invalid pattern", func() { r.HandleFunc("GET /{bad", answer("bad")) })
}

// The handler's ctx carries the values middleware put on the request (the
// user of Bearer, the request id of RequestID, a value of one's own) but
// not the request's cancellation or deadline; the request id middleware
// set as a header goes out with the 101.
func TestPromiseHandlerContextKeepsValuesNotCancellationOrDeadline(t *testing.T) {
	type key struct{}
	r := router.New(router.WithConfig(quiet))
	r.Use(middleware.RequestID, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			ctx, cancel := context.WithTimeout(req.Context(), time.Hour)
			next.ServeHTTP(w, req.WithContext(context.WithValue(ctx, key{}, "from middleware")))
			cancel() // before the handler runs: the router starts it after the chain returned
		})
	})
	type seen struct {
		value, user, id string
		deadline        bool
		err             error
	}
	got := make(chan seen, 1)
	r.Group(func(g *router.Router) {
		g.Use(middleware.Bearer(func(_ context.Context, token string) (string, error) {
			if token != "s3cret" {
				return "", errors.New("unknown token")
			}
			return "ada", nil
		}))
		router.WS(g, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			var v seen
			v.value, _ = ctx.Value(key{}).(string)
			v.user, _ = middleware.UserFrom(ctx)
			v.id = middleware.RequestIDFrom(ctx)
			_, v.deadline = ctx.Deadline()
			v.err = ctx.Err()
			got <- v
			return nil
		})
	})
	base := serve(t, r)

	_, resp, err := dial(t, wsURL(base, "/ws"), http.Header{"Authorization": {"Bearer s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	var v seen
	select {
	case v = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not run")
	}
	if v.value != "from middleware" || v.user != "ada" {
		t.Errorf("handler's ctx: value %q user %q, want the middleware's", v.value, v.user)
	}
	if id := resp.Header.Get(middleware.RequestIDHeader); id == "" || v.id != id {
		t.Errorf("request id %q in the handler, %q in the 101", v.id, id)
	}
	if v.deadline || v.err != nil {
		t.Errorf("handler's ctx has a deadline (%v) or is done (%v): it took the request's", v.deadline, v.err)
	}
}

// Middleware that writes on its way out cancels the upgrade: its answer
// stands, no handler runs, no connection counts, and a warning is logged.
func TestPromiseMiddlewareWritingCancelsUpgradeWithAWarning(t *testing.T) {
	logs := &testlog.Buffer{}
	cfg := wsconn.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))}
	r := router.New(router.WithConfig(cfg))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req)
			http.Error(w, "changed my mind", http.StatusTeapot)
		})
	})
	var ran atomic.Bool
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		ran.Store(true)
		return nil
	})
	base := serve(t, r)
	resp, err := http.DefaultClient.Do(upgradeRequest(t, base+"/ws"))
	if err != nil {
		t.Fatal(err)
	}
	if b := rawBody(t, resp); resp.StatusCode != http.StatusTeapot || b != "changed my mind\n" {
		t.Fatalf("got %d %q, want the middleware's 418", resp.StatusCode, b)
	}
	// The warning is logged before ServeHTTP returns, so before the answer
	// is flushed.
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "middleware wrote a response") {
		t.Errorf("no warning logged: %q", l)
	}
	if ran.Load() || r.Connections() != 0 {
		t.Errorf("handler ran %v, connections %d", ran.Load(), r.Connections())
	}
}

// Serving without the app package: Router.Shutdown sends 1001 to every
// open WebSocket, reports them as graceful once their handlers returned,
// and refuses later upgrades with 503.
func TestPromiseRouterShutdownIsGraceful(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/echo", nil, echo[struct{}])
	base := serve(t, r)

	const n = 3
	codes := make(chan int, n)
	for range n {
		c, _, err := dial(t, wsURL(base, "/echo"), nil)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			_, _, err := c.ReadMessage() // gorilla answers the CLOSE
			var ce *gorilla.CloseError
			if errors.As(err, &ce) {
				codes <- ce.Code
			} else {
				codes <- -1
			}
		}()
	}
	// A connection counts from before its 101.
	if got := r.Connections(); got != n {
		t.Fatalf("Connections %d, want %d", got, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := r.Shutdown(ctx)
	if err != nil || rep.Graceful != n || rep.Forced != 0 {
		t.Fatalf("Shutdown: %+v %v, want %d graceful", rep, err, n)
	}
	for range n {
		if code := <-codes; code != int(wsconn.CloseGoingAway) {
			t.Errorf("a client got %d, want 1001", code)
		}
	}
	if got := r.Connections(); got != 0 {
		t.Errorf("Connections %d after Shutdown", got)
	}
	resp, err := http.DefaultClient.Do(upgradeRequest(t, base+"/echo"))
	if err != nil {
		t.Fatal(err)
	}
	if b := rawBody(t, resp); resp.StatusCode != http.StatusServiceUnavailable || b != "server is shutting down\n" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("upgrade after Shutdown: %d %q %v, want 503", resp.StatusCode, b, resp.Header)
	}
}

// A handler that ignores the shutdown is forced at ctx's end, and when it
// still runs a second after its transport was closed, Shutdown says so
// with ErrShutdownIncomplete.
func TestPromiseRouterShutdownForcesAndReportsIncomplete(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	release := make(chan struct{})
	returned := make(chan struct{})
	router.WS(r, "/stuck", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		defer close(returned)
		<-release
		return nil
	})
	base := serve(t, r)
	c, _, err := dial(t, wsURL(base, "/stuck"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rep, err := r.Shutdown(ctx)
	close(release)
	<-returned
	if !errors.Is(err, router.ErrShutdownIncomplete) || rep.Forced != 1 || rep.Graceful != 0 {
		t.Fatalf("Shutdown: %+v %v, want 1 forced and ErrShutdownIncomplete", rep, err)
	}
	// The transport was closed without waiting for the client.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatal("the forced connection is still open")
			}
			break
		}
	}
}

// stallingListener hands out connections that note the write deadlines
// set on them, and that can hold the 101 response until its deadline, as a
// client that reads nothing would once the socket buffers are full.
type stallingListener struct {
	net.Listener
	stall101  bool
	deadlines chan time.Duration // time left until each non-zero write deadline, when set
}

func (l *stallingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &stallingConn{Conn: c, l: l, closed: make(chan struct{})}, nil
}

type stallingConn struct {
	net.Conn
	l         *stallingListener
	mu        sync.Mutex
	deadline  time.Time
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *stallingConn) note(t time.Time) {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	if !t.IsZero() {
		select {
		case c.l.deadlines <- time.Until(t):
		default:
		}
	}
}

func (c *stallingConn) SetWriteDeadline(t time.Time) error {
	c.note(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *stallingConn) SetDeadline(t time.Time) error {
	c.note(t)
	return c.Conn.SetDeadline(t)
}

func (c *stallingConn) Write(p []byte) (int, error) {
	if c.l.stall101 && bytes.HasPrefix(p, []byte("HTTP/1.1 101 ")) {
		c.mu.Lock()
		d := c.deadline
		c.mu.Unlock()
		wait := 10 * time.Second // no deadline: stall long enough for the test to see it
		if !d.IsZero() {
			wait = time.Until(d)
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-c.closed:
		}
		return 0, os.ErrDeadlineExceeded
	}
	return c.Conn.Write(p)
}

func (c *stallingConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// serveOn is serve on a listener of the test's.
func serveOn(t *testing.T, r *router.Router, ln net.Listener) string {
	t.Helper()
	srv := &http.Server{Handler: r}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if _, err := r.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		<-done
		http.DefaultClient.CloseIdleConnections()
	})
	return "http://" + ln.Addr().String()
}

// The 101 is written under a deadline, the route's WriteTimeout: 10 s by
// default and for a negative one, its value otherwise. A client that does
// not take the 101 within it loses the connection; its handler never runs
// and it does not count.
func TestPromiseWriteTimeoutBoundsThe101(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []router.Option
		want time.Duration
	}{
		{"default", nil, 10 * time.Second},
		{"negative", []router.Option{router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: -time.Second})}, 10 * time.Second},
		{"3s", []router.Option{router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: 3 * time.Second})}, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			sl := &stallingListener{Listener: ln, deadlines: make(chan time.Duration, 16)}
			r := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger}))
			router.WS(r, "/ws", nil, echo[struct{}], tc.opts...)
			base := serveOn(t, r, sl)
			if _, _, err := dial(t, wsURL(base, "/ws"), nil); err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-sl.deadlines:
				if d > tc.want || d < tc.want-2*time.Second {
					t.Fatalf("the 101 was written with %v left, want %v", d, tc.want)
				}
			default:
				t.Fatal("the 101 was written without a deadline")
			}
		})
	}

	t.Run("stalled client", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		sl := &stallingListener{Listener: ln, stall101: true, deadlines: make(chan time.Duration, 16)}
		r := router.New(router.WithConfig(quiet))
		var ran atomic.Bool
		router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			ran.Store(true)
			return nil
		}, router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: 100 * time.Millisecond}))
		base := serveOn(t, r, sl)
		d := gorilla.Dialer{HandshakeTimeout: 10 * time.Second}
		_, resp, err := d.Dial(wsURL(base, "/ws"), nil)
		if err == nil || resp != nil {
			t.Fatalf("dial: %v %v, want the connection dropped without an answer", err, resp)
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatalf("the server kept the stalled connection: %v", err)
		}
		if d := <-sl.deadlines; d > 100*time.Millisecond {
			t.Fatalf("deadline %v, want 100ms", d)
		}
		// The place is given back just after the socket is closed.
		for deadline := time.Now().Add(5 * time.Second); r.Connections() != 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if ran.Load() || r.Connections() != 0 {
			t.Fatalf("handler ran %v, connections %d", ran.Load(), r.Connections())
		}
	})
}
