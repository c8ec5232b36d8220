package app_test

// Tests of what docs/configuration.md and docs/routing.md promise about
// the application, each through a loopback socket and a client colibri
// does not share code with.

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// deadline is a deadline set on an accepted connection: which one, and
// how long it left when it was set.
type deadline struct {
	write bool // a write deadline (SetWriteDeadline or SetDeadline); else a read deadline
	left  time.Duration
}

// watchedListener hands out connections that report the non-zero
// deadlines set on them and their first Close.
type watchedListener struct {
	net.Listener
	deadlines chan deadline
	closed    chan struct{} // one token per closed connection
}

func watch(t *testing.T) *watchedListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &watchedListener{Listener: ln, deadlines: make(chan deadline, 64), closed: make(chan struct{}, 64)}
}

func (l *watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &watchedConn{Conn: c, l: l}, nil
}

type watchedConn struct {
	net.Conn
	l    *watchedListener
	once sync.Once
}

func (c *watchedConn) report(write, read bool, t time.Time) {
	if t.IsZero() {
		return
	}
	left := time.Until(t)
	if left <= 0 {
		return // net/http's "a long time ago", to interrupt a read
	}
	for _, d := range []deadline{{write: true, left: left}, {left: left}} {
		if d.write && !write || !d.write && !read {
			continue
		}
		select {
		case c.l.deadlines <- d:
		default: // the test reads only the first few
		}
	}
}

func (c *watchedConn) SetDeadline(t time.Time) error {
	c.report(true, true, t)
	return c.Conn.SetDeadline(t)
}

func (c *watchedConn) SetReadDeadline(t time.Time) error {
	c.report(false, true, t)
	return c.Conn.SetReadDeadline(t)
}

func (c *watchedConn) SetWriteDeadline(t time.Time) error {
	c.report(true, false, t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *watchedConn) Close() error {
	c.once.Do(func() {
		select {
		case c.l.closed <- struct{}{}:
		default:
		}
	})
	return c.Conn.Close()
}

// next returns the next deadline of the kind asked for.
func (l *watchedListener) next(t *testing.T, write bool) time.Duration {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case d := <-l.deadlines:
			if d.write == write {
				return d.left
			}
		case <-timeout:
			t.Fatalf("no deadline set (write %v)", write)
		}
	}
}

// serveApp runs a on ln until the test ends.
func serveApp(t *testing.T, a *app.App, ln net.Listener) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
			http.DefaultClient.CloseIdleConnections()
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + ln.Addr().String(), stop
}

// near reports whether got is want, less at most the time the test took
// to see it.
func near(got, want time.Duration) bool { return got <= want && got > want-2*time.Second }

// The defaults in configuration.md's app table are the App's:
// ReadHeaderTimeout 10 s and IdleTimeout 120 s, for zero and negative
// values; set values replace them. The 101 is bounded by the route's
// WriteTimeout: 10 s when it is zero or negative.
func TestPromiseAppTimeoutDefaults(t *testing.T) {
	for _, tc := range []struct {
		name                            string
		cfg                             app.Config
		route                           []router.Option
		readHeader, idle, handshakeWant time.Duration
	}{
		{"zero", app.Config{}, nil, 10 * time.Second, 120 * time.Second, 10 * time.Second},
		{"negative", app.Config{ReadHeaderTimeout: -1, IdleTimeout: -1}, nil,
			10 * time.Second, 120 * time.Second, 10 * time.Second},
		{"set", app.Config{ReadHeaderTimeout: 7 * time.Second, IdleTimeout: 30 * time.Second},
			[]router.Option{router.WithConfig(wsconn.Config{Logger: quiet, WriteTimeout: 4 * time.Second})},
			7 * time.Second, 30 * time.Second, 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// No write timeout on connections: the only write deadline
			// is the handshake's, 10 s unless the route sets one.
			r := router.New(router.WithConfig(wsconn.Config{Logger: quiet, WriteTimeout: -1}))
			r.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
			router.WS(r, "/echo", nil, echo, tc.route...)
			cfg := tc.cfg
			cfg.Logger = quiet
			ln := watch(t)
			base, _ := serveApp(t, app.New(r, cfg), ln)

			resp, err := http.Get(base + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if d := ln.next(t, false); !near(d, tc.readHeader) {
				t.Errorf("reading the headers had %v, want %v", d, tc.readHeader)
			}
			if d := ln.next(t, false); !near(d, tc.idle) {
				t.Errorf("the idle keep-alive connection had %v, want %v", d, tc.idle)
			}
			c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if d := ln.next(t, true); !near(d, tc.handshakeWant) {
				t.Errorf("the 101 was written with %v, want %v", d, tc.handshakeWant)
			}
		})
	}
}

// The zero Config listens on :8080.
func TestPromiseDefaultAddr(t *testing.T) {
	addr := make(chan net.Addr, 1)
	a := app.New(nil, app.Config{Logger: quiet, NoSignals: true, OnListen: func(x net.Addr) { addr <- x }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case x := <-addr:
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if tcp, ok := x.(*net.TCPAddr); !ok || tcp.Port != 8080 {
			t.Fatalf("listened on %v, want port 8080", x)
		}
	case err := <-done:
		cancel()
		t.Skipf("port 8080 is taken on this machine: %v", err)
	}
}

// upgrade sends a valid handshake to url with net/http's client and
// returns the answer's status, Retry-After and body.
func upgrade(t *testing.T, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = http.Header{
		"Upgrade":               {"websocket"},
		"Connection":            {"Upgrade"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// Beyond MaxConnections: 503, Retry-After of RetryAfter rounded up to
// whole seconds (1 by default), and the documented body. A connection
// counts until it is over; then its place is free again.
func TestPromiseConnectionCapAnswer(t *testing.T) {
	const full = "too many WebSocket connections; try again later\n"
	for _, tc := range []struct {
		retryAfter time.Duration
		want       string
	}{
		{0, "1"},
		{-time.Second, "1"},
		{time.Millisecond, "1"},
		{1500 * time.Millisecond, "2"},
		{4 * time.Second, "4"},
	} {
		_, base, stop := start(t, newRouter(), app.Config{MaxConnections: 1, RetryAfter: tc.retryAfter})
		c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
		if err != nil {
			t.Fatal(err)
		}
		status, retry, body := upgrade(t, base+"/echo")
		if status != http.StatusServiceUnavailable || retry != tc.want || body != full {
			t.Errorf("RetryAfter %v: %d, Retry-After %q, %q; want 503, %q, %q", tc.retryAfter, status, retry, body, tc.want, full)
		}
		c.Close()
		_ = stop()
	}

	// The place of a connection that ended is free again.
	a, base, _ := start(t, newRouter(), app.Config{MaxConnections: 1})
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""))
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
		t.Fatalf("closing: %v", err)
	}
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); a.Connections() != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := a.Connections(); n != 0 {
		t.Fatalf("Connections %d after the only client left", n)
	}
	c, _, err = gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err != nil {
		t.Fatalf("upgrade after the place was given back: %v", err)
	}
	c.Close()
}

// Two upgrades that arrive together at the cap: the decision of each runs
// while nobody is connected yet, one gets its WebSocket, and the other is
// beyond MaxConnections: it must get the documented 503, with RetryAfter
// in Retry-After, and the App's Observer must be told.
func TestPromiseCapRefusalOfConcurrentUpgradesCarriesRetryAfter(t *testing.T) {
	inside := make(chan struct{}, 2)
	release := make(chan struct{})
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/slow", func(*http.Request) (struct{}, router.Decision) {
		inside <- struct{}{} // a slow decision: an authorisation lookup, say
		<-release
		return struct{}{}, router.Upgrade(nil)
	}, echo)
	w := &watcher{}
	_, base, _ := start(t, r, app.Config{MaxConnections: 1, RetryAfter: 5 * time.Second, Observer: w})

	type answer struct {
		c    *gorilla.Conn
		resp *http.Response
	}
	answers := make(chan answer, 2)
	for range 2 {
		go func() {
			c, resp, _ := gorilla.DefaultDialer.Dial(ws(base, "/slow"), nil)
			answers <- answer{c, resp}
		}()
	}
	for range 2 {
		select {
		case <-inside:
		case <-time.After(5 * time.Second):
			close(release)
			t.Fatal("the two decisions did not run together")
		}
	}
	close(release)
	var refused *http.Response
	for range 2 {
		a := <-answers
		if a.c != nil {
			defer a.c.Close()
			continue
		}
		refused = a.resp
	}
	if refused == nil || refused.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("want one upgrade refused with 503, got %v", refused)
	}
	b, _ := io.ReadAll(refused.Body)
	refused.Body.Close()
	if string(b) != "too many WebSocket connections; try again later\n" {
		t.Errorf("body %q", b)
	}
	if got := refused.Header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After %q, want \"5\" from Config.RetryAfter", got)
	}
	w.wait(1)
	w.mu.Lock()
	seen := len(w.upgrades)
	w.mu.Unlock()
	if seen != 1 {
		t.Errorf("the App's Observer saw %d refusals, want the 503", seen)
	}
}

// An App that is shutting down answers new upgrade requests with 503.
func TestPromiseShuttingDownAppRefusesUpgrades(t *testing.T) {
	a := app.New(newRouter(), app.Config{Logger: quiet})
	ln := watch(t)
	base, stop := serveHTTP(a, ln)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	status, retry, body := upgrade(t, base+"/echo")
	if status != http.StatusServiceUnavailable || retry == "" || body != "server is shutting down\n" {
		t.Fatalf("upgrade while shutting down: %d, Retry-After %q, %q", status, retry, body)
	}
}

// The order of routing.md's Upgrade hooks: the connection limit, then the
// hooks, then the router's middleware; a connection a hook takes over does
// not count in Connections and outlives the App's shutdown.
func TestPromiseUpgradeHookOrderAndTakenOverConnections(t *testing.T) {
	var mu sync.Mutex
	var trace []string
	note := func(s string) {
		mu.Lock()
		trace = append(trace, s)
		mu.Unlock()
	}
	took := func() string {
		mu.Lock()
		defer mu.Unlock()
		s := strings.Join(trace, " ")
		trace = nil
		return s
	}
	var legacy sync.WaitGroup
	first := func(w http.ResponseWriter, r *http.Request) *http.Request {
		note("hook")
		if r.URL.Query().Get("banned") != "" {
			http.Error(w, "banned", http.StatusForbidden)
			return nil
		}
		return r
	}
	takeOver := func(w http.ResponseWriter, r *http.Request) *http.Request {
		if r.URL.Path != "/legacy" {
			return r
		}
		up := gorilla.Upgrader{}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return nil
		}
		legacy.Go(func() {
			defer c.Close()
			for {
				typ, p, err := c.ReadMessage()
				if err != nil || c.WriteMessage(typ, p) != nil {
					return
				}
			}
		})
		return nil
	}
	r := newRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			note("middleware")
			next.ServeHTTP(w, req)
		})
	})
	a, base, stop := start(t, r, app.Config{MaxConnections: 1, UpgradeHooks: []app.UpgradeHook{first, takeOver}})

	status, _, _ := upgrade(t, base+"/echo?banned=1")
	if got := took(); status != http.StatusForbidden || got != "hook" {
		t.Errorf("refusing hook: %d through %q, want 403 before any middleware", status, got)
	}
	old, _, err := gorilla.DefaultDialer.Dial(ws(base, "/legacy"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if got := took(); got != "hook" || a.Connections() != 0 {
		t.Errorf("taken over through %q with %d connections, want hooks only and none counted", got, a.Connections())
	}
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := took(); got != "hook middleware" || a.Connections() != 1 {
		t.Errorf("upgrade through %q with %d connections", got, a.Connections())
	}
	// At the cap, the limit answers where the route decides to upgrade,
	// after the hooks and the middleware (which see the 503).
	status, _, _ = upgrade(t, base+"/echo")
	if got := took(); status != http.StatusServiceUnavailable || got != "hook middleware" {
		t.Errorf("at the cap: %d through %q, want 503 from the route's decision", status, got)
	}

	closed := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage()
		closed <- err
	}()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := <-closed; !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Errorf("colibri's connection got %v, want 1001", err)
	}
	// The taken-over connection is the hook's: still open after Run returned.
	if err := old.WriteMessage(gorilla.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := old.ReadMessage(); err != nil || string(p) != "still here" {
		t.Errorf("taken-over connection after shutdown: %q %v", p, err)
	}
	old.Close()
	legacy.Wait()
}

// A ShutdownCode that may not be sent on the wire is replaced by 1001.
func TestPromiseUnsendableShutdownCodeBecomes1001(t *testing.T) {
	for _, code := range []wsconn.CloseCode{1005, 1006, 1015, 999, 5000} {
		_, base, stop := start(t, newRouter(), app.Config{ShutdownCode: code})
		c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			_, _, err := c.ReadMessage()
			got <- err
		}()
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if err := <-got; !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
			t.Errorf("ShutdownCode %d: client got %v, want 1001", code, err)
		}
		c.Close()
	}
}

// ShutdownTimeout defaults to 10 s: a handler that ignores the shutdown
// keeps Run waiting that long, then its transport is closed without a
// handshake and Run returns.
func TestPromiseShutdownTimeoutDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("waits the default 10 s")
	}
	t.Parallel()
	ln := watch(t)
	release := make(chan struct{})
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet, CloseTimeout: time.Minute}))
	router.WS(r, "/stuck", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-release // ignores the shutdown
		return nil
	})
	base, stop := serveApp(t, app.New(r, app.Config{Logger: quiet}), ln)
	// A client that never answers the 1001: only the deadline ends it.
	upgradeRaw(t, &net.Dialer{}, hostOf(base), "/stuck")

	stopped := make(chan error, 1)
	begin := time.Now()
	go func() { stopped <- stop() }()
	select {
	case <-ln.closed: // the transport, closed at the deadline
	case <-time.After(20 * time.Second):
		close(release)
		t.Fatal("the stuck connection was never closed")
	}
	took := time.Since(begin)
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took < app.DefaultShutdownTimeout || took > app.DefaultShutdownTimeout+5*time.Second {
		t.Fatalf("the transport was closed after %v, want %v", took, app.DefaultShutdownTimeout)
	}
	if app.DefaultShutdownTimeout != 10*time.Second {
		t.Fatalf("DefaultShutdownTimeout is %v, the docs say 10 s", app.DefaultShutdownTimeout)
	}
}
