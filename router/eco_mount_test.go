package router_test

// A router that is not the outermost handler: mounted in an http.ServeMux
// behind http.StripPrefix, in chi with chi's middleware, in an
// httptest TLS server, behind gzhttp. Real loopback sockets, gorilla
// clients.

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	gorilla "github.com/gorilla/websocket"
	"github.com/klauspost/compress/gzhttp"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvEcoSeen is what a ws handler saw of its request.
type rvEcoSeen struct {
	pattern, room, path, remote, value string
	deadline                           bool
}

type rvEcoKey struct{}

// rvEcoReport is a handler that reports what it sees (its Config must keep
// the request), waits for the client's first message and echoes it.
func rvEcoReport(seen chan<- rvEcoSeen) wsconn.Handler[struct{}] {
	return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		req := s.Request()
		v, _ := ctx.Value(rvEcoKey{}).(string)
		_, dl := ctx.Deadline()
		seen <- rvEcoSeen{pattern: req.Pattern, room: req.PathValue("room"), path: req.URL.Path,
			remote: req.RemoteAddr, value: v, deadline: dl}
		for m := range in.Messages(1 << 20) {
			if err := out.WriteText(ctx, m.Text()); err != nil {
				return err
			}
		}
		return in.Err()
	}
}

// rvEcoServe serves h on a loopback httptest server (TLS when tlsOn) and
// returns its ws:// or wss:// base and a dialer for it.
func rvEcoServe(t *testing.T, h http.Handler, tlsOn bool) (string, *gorilla.Dialer) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	d := &gorilla.Dialer{HandshakeTimeout: 5 * time.Second}
	if tlsOn {
		srv.StartTLS()
		d.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), d
}

// rvEcoDial dials url and fails the test on error.
func rvEcoDial(t *testing.T, d *gorilla.Dialer, url string, h http.Header) (*gorilla.Conn, *http.Response) {
	t.Helper()
	c, resp, err := d.Dial(url, h)
	if err != nil {
		status := 0
		body := ""
		if resp != nil {
			status = resp.StatusCode
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		t.Fatalf("dial %s: %v (%d %q)", url, err, status, body)
	}
	t.Cleanup(func() { c.Close() })
	return c, resp
}

// rvEcoEchoOnce sends text and expects it back.
func rvEcoEchoOnce(t *testing.T, c *gorilla.Conn, text string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(gorilla.TextMessage, []byte(text)); err != nil {
		t.Fatal(err)
	}
	_, p, err := c.ReadMessage()
	if err != nil || string(p) != text {
		t.Fatalf("echo: %q %v, want %q", p, err, text)
	}
}

// rvEcoAwaitClose reads until the server's CLOSE and returns its code.
func rvEcoAwaitClose(t *testing.T, c *gorilla.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if ce, ok := err.(*gorilla.CloseError); ok {
				return ce.Code
			}
			t.Fatalf("waiting for CLOSE: %v", err)
		}
	}
}

// rvEcoShutdown shuts r down and expects every connection graceful.
func rvEcoShutdown(t *testing.T, r *router.Router, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := r.Shutdown(ctx)
	if err != nil || rep != (router.ShutdownReport{Graceful: want}) {
		t.Fatalf("Shutdown = %+v, %v; want %d graceful", rep, err, want)
	}
}

var rvEcoKeep = router.WithConfig(wsconn.Config{KeepRequest: true, Logger: quiet.Logger})

// Mounted in an http.ServeMux behind http.StripPrefix, with an outer
// middleware that replaces the request (WithContext): the route matches
// the stripped path, its wildcard and pattern are what the handler sees,
// the outer context value reaches the handler, and the router's own
// Shutdown (the http.Server's does not know hijacked connections) sends
// 1001 to the socket and counts it.
func TestStripPrefixUnderServeMux(t *testing.T) {
	seen := make(chan rvEcoSeen, 1)
	r := router.New(rvEcoKeep)
	router.WS(r, "GET /ws/{room}", nil, rvEcoReport(seen))
	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", r))
	outer := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mux.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), rvEcoKey{}, "outer")))
	})
	base, d := rvEcoServe(t, outer, false)

	c, _ := rvEcoDial(t, d, base+"/api/ws/lobby", nil)
	got := gdrWait(t, seen, "handler")
	want := rvEcoSeen{pattern: "/ws/{room}", room: "lobby", path: "/ws/lobby", value: "outer"}
	got.remote = ""
	if got != want {
		t.Errorf("handler saw %+v, want %+v", got, want)
	}
	rvEcoEchoOnce(t, c, "hi")
	if n := r.Connections(); n != 1 {
		t.Errorf("Connections = %d, want 1", n)
	}
	done := make(chan int, 1)
	go func() { done <- rvEcoAwaitClose(t, c) }()
	rvEcoShutdown(t, r, 1)
	if code := <-done; code != gorilla.CloseGoingAway {
		t.Errorf("close code %d, want 1001", code)
	}
}

// chi routes to the router (Mount keeps the full path, so the ws route's
// pattern has it) through chi's Logger, Compress, RealIP, Recoverer,
// ThrottleBacklog(1, ...) and Timeout: the upgrade works, two sockets stay open at
// once under a limit of one request (it ends with the hijack), the handler's
// context carries values but not chi's deadline, RealIP's address is the
// request's, and the router's Shutdown reaches both sockets.
func TestChiMountWithChiMiddleware(t *testing.T) {
	seen := make(chan rvEcoSeen, 2)
	r := router.New(rvEcoKeep)
	router.WS(r, "/api/ws/{room}", nil, rvEcoReport(seen))
	cr := chi.NewRouter()
	//lint:ignore SA1019 RealIP rewrites RemoteAddr, a request change the socket must keep
	realIP := chimw.RealIP
	cr.Use(chimw.RequestLogger(&chimw.DefaultLogFormatter{Logger: log.New(io.Discard, "", 0), NoColor: true}),
		chimw.Compress(5), realIP, chimw.Recoverer, chimw.ThrottleBacklog(1, 1, 5*time.Second), chimw.Timeout(50*time.Millisecond),
		func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				next.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), rvEcoKey{}, "chi")))
			})
		})
	cr.Mount("/api", r)
	base, d := rvEcoServe(t, cr, false)

	h := http.Header{"Accept-Encoding": {"gzip, deflate"}, "X-Real-Ip": {"203.0.113.7"}}
	c1, resp := rvEcoDial(t, d, base+"/api/ws/a", h)
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("101 carries Content-Encoding %q", ce)
	}
	c2, _ := rvEcoDial(t, d, base+"/api/ws/b", h)
	for range 2 {
		got := gdrWait(t, seen, "handler")
		if got.value != "chi" || got.deadline || got.remote != "203.0.113.7" || got.pattern != "/api/ws/{room}" ||
			(got.room != "a" && got.room != "b") {
			t.Errorf("handler saw %+v", got)
		}
	}
	time.Sleep(100 * time.Millisecond) // past chi's Timeout: the sockets must not care
	rvEcoEchoOnce(t, c1, "one")
	rvEcoEchoOnce(t, c2, "two")
	done := make(chan int, 2)
	go func() { done <- rvEcoAwaitClose(t, c1) }()
	go func() { done <- rvEcoAwaitClose(t, c2) }()
	rvEcoShutdown(t, r, 2)
	for range 2 {
		if code := <-done; code != gorilla.CloseGoingAway {
			t.Errorf("close code %d, want 1001", code)
		}
	}
}

// Over TLS (httptest's TLS server) behind gzhttp and http.MaxBytesHandler,
// with a client that accepts gzip: the 101 is not compressed, and a
// WebSocket carries far more than the body limit (it is no request body).
func TestTLSBehindGzhttpAndMaxBytes(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, rvEcoEcho)
	base, d := rvEcoServe(t, gzhttp.GzipHandler(http.MaxBytesHandler(r, 64)), true)
	if !strings.HasPrefix(base, "wss://") {
		t.Fatalf("base %q", base)
	}
	c, resp := rvEcoDial(t, d, base+"/ws", http.Header{"Accept-Encoding": {"gzip"}})
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("101 carries Content-Encoding %q", ce)
	}
	big := strings.Repeat("z", 4096)
	for range 4 {
		rvEcoEchoOnce(t, c, big)
	}
	done := make(chan int, 1)
	go func() { done <- rvEcoAwaitClose(t, c) }()
	rvEcoShutdown(t, r, 1)
	if code := <-done; code != gorilla.CloseGoingAway {
		t.Errorf("close code %d, want 1001", code)
	}
}

// routing.md, "Values reach the handler": chi's route context is pooled
// and recycled once chi's ServeHTTP returns, before an HTTP/1.1 handler
// runs, so the docs say to copy chi.URLParam in shouldUpgrade: the value
// so copied stays the upgrade's own, whatever later request chi serves.
func TestChiURLParamCopiedInShouldUpgrade(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one P: the pool hands the context straight back
	type ask struct{ reply chan string }
	asks := make(chan ask)
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/t/{tenant}/ws", func(req *http.Request) (string, router.Decision) {
		return chi.URLParam(req, "tenant"), router.Upgrade(nil)
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		a := <-asks
		a.reply <- s.Value
		return nil
	})
	cr := chi.NewRouter()
	cr.Get("/t/{tenant}/x", func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, chi.URLParam(req, "tenant")) })
	cr.Mount("/t/{tenant}", r)
	base, d := rvEcoServe(t, cr, false)
	httpBase := "http" + strings.TrimPrefix(base, "ws")

	for i := range 8 {
		want := "tenant" + string(rune('a'+i))
		c, _ := rvEcoDial(t, d, base+"/t/"+want+"/ws", nil)
		resp, err := http.Get(httpBase + "/t/other/x") // a later request through chi
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		a := ask{reply: make(chan string, 1)}
		asks <- a
		if got := <-a.reply; got != want {
			t.Fatalf("socket %d: the tenant copied in shouldUpgrade = %q, want %q", i, got, want)
		}
		c.Close()
	}
}
