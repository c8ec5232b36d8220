package app_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}

var quiet = slog.New(slog.DiscardHandler)

func echo(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
	for m := range in.Messages(0) {
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

// start runs an App of h on a free loopback port until the test ends, and
// returns it, its base URL and a function that stops it and returns Run's
// error. The App logs to cfg.Logger, or nowhere.
func start(t *testing.T, h http.Handler, cfg app.Config) (*app.App, string, func() error) {
	t.Helper()
	addr := make(chan net.Addr, 1)
	cfg.Addr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	cfg.NoSignals = true
	cfg.OnListen = func(a net.Addr) { addr <- a }
	a := app.New(h, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var base string
	select {
	case got := <-addr:
		base = "http://" + got.String()
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			http.DefaultClient.CloseIdleConnections()
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return a, base, stop
}

func ws(base, path string) string { return "ws" + strings.TrimPrefix(base, "http") + path }

func newRouter() *router.Router {
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	r.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	router.WS(r, "/echo", nil, echo)
	return r
}

func TestRunServesAndStopsOnContext(t *testing.T) {
	a, base, stop := start(t, newRouter(), app.Config{})
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a.Connections() != 1 || a.Addr() == nil {
		t.Fatalf("connections %d addr %v", a.Connections(), a.Addr())
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Fatalf("open client got %v on shutdown, want 1001", err)
	}
}

func TestShutdownSends1001ToHundredClients(t *testing.T) {
	_, base, stop := start(t, newRouter(), app.Config{ShutdownTimeout: 3 * time.Second})
	const n = 100
	conns := make([]*gorilla.Conn, n)
	for i := range conns {
		c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	codes := make(chan int, n)
	for _, c := range conns {
		go func() {
			_, _, err := c.ReadMessage()
			if ce, ok := err.(*gorilla.CloseError); ok {
				codes <- ce.Code
			} else {
				codes <- -1
			}
			// Answer the close like a browser does, then hang up.
			c.Close()
		}()
	}
	begin := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("shutdown took %v, past its deadline", d)
	}
	for range n {
		if code := <-codes; code != 1001 {
			t.Fatalf("a client got %d, want 1001", code)
		}
	}
}

// TestShutdownCodeIsConfigurable: Config.ShutdownCode replaces 1001,
// for example with 1012 Service Restart.
func TestShutdownCodeIsConfigurable(t *testing.T) {
	_, base, stop := start(t, newRouter(), app.Config{ShutdownTimeout: 3 * time.Second, ShutdownCode: 1012})
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage()
		got <- err
		c.Close()
	}()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := <-got; !gorilla.IsCloseError(err, 1012) {
		t.Fatalf("client got %v on shutdown, want 1012", err)
	}
}

func TestShutdownForcesHandlersThatIgnoreIt(t *testing.T) {
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	stuck := make(chan struct{})
	router.WS(r, "/stuck", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-stuck // ignores ctx until the transport is gone
		return nil
	})
	a, base, _ := start(t, r, app.Config{})
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/stuck"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	go func() {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond)
		close(stuck)
	}()
	report, err := a.Shutdown(ctx)
	if err != nil || report.Forced != 1 || report.Graceful != 0 {
		t.Fatalf("report %+v err %v", report, err)
	}
}

func TestMaxConnections(t *testing.T) {
	_, base, _ := start(t, newRouter(), app.Config{MaxConnections: 2, RetryAfter: 3 * time.Second})
	for range 2 {
		c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	_, resp, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("third connection: %v %v", err, resp)
	}
	// Plain HTTP is not limited.
	resp, err = http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz under the connection cap: %v", err)
	}
	resp.Body.Close()
}

func TestUpgradeHooks(t *testing.T) {
	// A hook that hands /legacy to another WebSocket library entirely.
	legacy := gorilla.Upgrader{}
	var wg sync.WaitGroup
	takeOver := func(w http.ResponseWriter, r *http.Request) *http.Request {
		if r.URL.Path != "/legacy" {
			return r
		}
		c, err := legacy.Upgrade(w, r, nil)
		if err != nil {
			return nil
		}
		wg.Go(func() {
			defer c.Close()
			typ, p, err := c.ReadMessage()
			if err == nil {
				c.WriteMessage(typ, append([]byte("legacy:"), p...))
			}
		})
		return nil
	}
	refuse := func(w http.ResponseWriter, r *http.Request) *http.Request {
		if r.URL.Query().Get("banned") != "" {
			http.Error(w, "banned", http.StatusForbidden)
			return nil
		}
		return r
	}
	type key struct{}
	annotate := func(w http.ResponseWriter, r *http.Request) *http.Request {
		return r.WithContext(context.WithValue(r.Context(), key{}, "seen by hook"))
	}
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/note", func(req *http.Request) (string, router.Decision) {
		v, _ := req.Context().Value(key{}).(string)
		return v, router.Upgrade(nil)
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		return out.WriteText(ctx, s.Value)
	})
	_, base, _ := start(t, r, app.Config{UpgradeHooks: []app.UpgradeHook{refuse, takeOver, annotate}})

	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/legacy"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.WriteMessage(gorilla.TextMessage, []byte("hi"))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "legacy:hi" {
		t.Fatalf("hijacking hook: %q %v", p, err)
	}
	c.Close()
	wg.Wait()

	_, resp, err := gorilla.DefaultDialer.Dial(ws(base, "/legacy?banned=1"), nil)
	if err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refusing hook: %v %v", err, resp)
	}
	c, _, err = gorilla.DefaultDialer.Dial(ws(base, "/note"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, p, _ := c.ReadMessage(); string(p) != "seen by hook" {
		t.Fatalf("hook context value: %q", p)
	}
}

func TestClosureForm(t *testing.T) {
	decide := func(r *http.Request) (string, router.Decision) {
		switch r.URL.Path {
		case "/nope":
			return "", router.DontUpgrade()
		case "/deny":
			return "", router.Reject(http.StatusTooManyRequests, nil, "slow down")
		}
		return r.URL.Path, router.Upgrade(nil)
	}
	handle := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		return out.WriteText(ctx, "path "+s.Value)
	}
	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain "+r.URL.Path) })
	_, base, _ := start(t, plain, app.Config{
		WebSocket: router.Everywhere(decide, handle, router.WithConfig(wsconn.Config{Logger: quiet})),
	})
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/any/where"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, p, _ := c.ReadMessage(); string(p) != "path /any/where" {
		t.Fatalf("got %q", p)
	}
	_, resp, _ := gorilla.DefaultDialer.Dial(ws(base, "/nope"), nil)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "plain /nope" {
		t.Fatalf("declined: %d %q", resp.StatusCode, b)
	}
	_, resp, _ = gorilla.DefaultDialer.Dial(ws(base, "/deny"), nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("rejected: %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/page")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "plain /page" {
		t.Fatalf("plain request: %q", b)
	}
	resp.Body.Close()
}

func TestTLS(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS() // only for its self-signed certificate
	cert := ts.TLS.Certificates[0]
	pool := ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	ts.Close()

	_, base, _ := start(t, newRouter(), app.Config{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	d := gorilla.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"}}
	c, _, err := d.Dial("wss"+strings.TrimPrefix(base, "http")+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(gorilla.TextMessage, []byte("secure"))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "secure" {
		t.Fatalf("wss echo: %q %v", p, err)
	}
}

func TestSignalStopsRun(t *testing.T) {
	addr := make(chan net.Addr, 1)
	a := app.New(newRouter(), app.Config{Addr: "127.0.0.1:0", Logger: quiet, OnListen: func(x net.Addr) { addr <- x }})
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	<-addr
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not stop Run")
	}
}
