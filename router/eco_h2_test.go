package router_test

// net/http ecosystem wrappers around, and inside, a router serving
// WebSockets over HTTP/2 (RFC 8441), through a real TLS loopback server.

import (
	"context"
	"io"
	"log"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/gobwas/ws"
	"github.com/klauspost/compress/gzhttp"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvEcoEcho answers every text message with itself.
func rvEcoEcho(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
	for m := range in.Messages(1 << 20) {
		if err := out.WriteText(ctx, m.Text()); err != nil {
			return err
		}
	}
	return in.Err()
}

// A body-size limit in the router's middleware (http.MaxBytesHandler, or
// chi's RequestSize, which wrap r.Body in http.MaxBytesReader) is about
// request bodies. Over HTTP/1.1 it never touches a WebSocket (the hijacked
// connection is read); docs/http2.md promises the same middleware and
// "framing, limits ... do not change" over HTTP/2. The socket must keep
// echoing after more than the limit has gone through it.
func TestH2BodyLimitMiddlewareDoesNotCapTheSocket(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Use(func(next http.Handler) http.Handler { return http.MaxBytesHandler(next, 512) })
	router.WS(r, "/ws", nil, rvEcoEcho)
	h := h2pServe(t, r, nil)

	s, _ := h2pDial(t, h, "/ws")
	defer s.CloseNow()
	msg := strings.Repeat("x", 200)
	for i := range 8 { // 8 x 206 bytes on the wire, over 512
		if err := s.WriteText(msg); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		op, p, err := s.ReadMessage()
		if err != nil || string(p) != msg {
			t.Fatalf("message %d (after %d bytes sent): got %v %d bytes, %v; the body limit of the CONNECT request capped the WebSocket", i, i*206, op, len(p), err)
		}
	}
}

// chi routes extended CONNECTs to the router through chi's Logger,
// Compress, RealIP, Recoverer and Timeout (outside the router), with
// gzhttp inside the router's own middleware and a client that accepts
// gzip: the socket opens with a plain 200, outlives chi's timeout (the
// handler's context has the request's values, not its deadline), echoes,
// and the router's Shutdown sends it 1001.
func TestH2ChiStackAroundRouter(t *testing.T) {
	deadline := make(chan bool, 1)
	r := router.New(router.WithConfig(quiet))
	gz, err := gzhttp.NewWrapper()
	if err != nil {
		t.Fatal(err)
	}
	r.Use(func(next http.Handler) http.Handler { return gz(next) })
	router.WS(r, "/api/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		_, dl := ctx.Deadline()
		deadline <- dl
		return rvEcoEcho(ctx, in, out, s)
	})
	cr := chi.NewRouter()
	//lint:ignore SA1019 RealIP rewrites RemoteAddr, a request change the socket must keep
	realIP := chimw.RealIP
	cr.Use(chimw.RequestLogger(&chimw.DefaultLogFormatter{Logger: log.New(io.Discard, "", 0), NoColor: true}),
		chimw.Compress(5), realIP, chimw.Recoverer, chimw.Timeout(50*time.Millisecond))
	cr.Mount("/api", r)
	h := h2pServe(t, r, func(srv *http.Server) { srv.Handler = cr })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, resp, err := h.client.Dial(ctx, h.base+"/api/ws", http.Header{"Accept-Encoding": {"gzip, deflate"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Fatalf("200 carries Content-Encoding %q", ce)
	}
	if dl := gdrWait(t, deadline, "handler"); dl {
		t.Error("the handler's context carries chi's deadline")
	}
	time.Sleep(100 * time.Millisecond) // past chi's Timeout
	h2pEcho(t, s, strings.Repeat("q", 3000))
	shut := make(chan router.ShutdownReport, 1)
	go func() {
		rep, _ := r.Shutdown(ctx)
		shut <- rep
	}()
	if code, _ := h2pReadClose(t, s); code != 1001 {
		t.Errorf("close code %d, want 1001", code)
	}
	_ = s.WriteFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(1001, "")))
	if rep := gdrWait(t, shut, "shutdown"); rep != (router.ShutdownReport{Graceful: 1}) {
		t.Errorf("Shutdown report %+v, want 1 graceful", rep)
	}
}

// http.TimeoutHandler around the router: its writer cannot flush, so an
// extended CONNECT cannot become a WebSocket. The client must get a clear
// HTTP error, not a 200 and a dead stream, and no connection stays
// counted.
func TestH2TimeoutHandlerAroundRouter(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, rvEcoEcho)
	h := h2pServe(t, r, func(srv *http.Server) { srv.Handler = http.TimeoutHandler(r, 5*time.Second, "slow") })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, resp, err := h.client.Dial(ctx, h.base+"/ws", nil)
	if err == nil {
		s.CloseNow()
		t.Fatal("a WebSocket opened through http.TimeoutHandler")
	}
	if resp == nil || resp.StatusCode != http.StatusInternalServerError || !strings.Contains(err.Error(), "cannot be upgraded") {
		t.Fatalf("dial: %v, want a 500 saying the stream cannot be upgraded", err)
	}
	if n := r.Connections(); n != 0 {
		t.Errorf("Connections = %d after a failed handshake, want 0", n)
	}
}
