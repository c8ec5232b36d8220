package router_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/router"
)

// rvrw2EchoMany sends n messages of 200 bytes through s (over 512 bytes
// in all) and expects each back.
func rvrw2EchoMany(t *testing.T, echo func(string) error, n int) {
	t.Helper()
	msg := strings.Repeat("x", 200)
	for i := range n {
		if err := echo(msg); err != nil {
			t.Fatalf("message %d (after %d bytes sent): %v; a body limit in middleware capped the WebSocket", i, i*206, err)
		}
	}
}

// A router mounted in another router (outer.Handle("/inner/", inner))
// serves its WebSockets over HTTP/2 too. docs/http2.md: "Put such
// middleware in r.Use", where the two-phase hand-off keeps it off the
// socket. A body limit in the outer router's r.Use must not cut the inner
// router's socket either.
func TestH2NestedRouterBodyLimit(t *testing.T) {
	inner := router.New(router.WithConfig(quiet))
	router.WS(inner, "/inner/ws", nil, rvEcoEcho)
	outer := router.New(router.WithConfig(quiet))
	outer.Use(func(next http.Handler) http.Handler { return http.MaxBytesHandler(next, 512) })
	outer.Handle("/inner/", inner)
	h := h2pServe(t, outer, nil)
	t.Cleanup(func() { rvrw2Shut(inner) })

	s, _ := h2pDial(t, h, "/inner/ws")
	defer s.CloseNow()
	rvrw2EchoMany(t, func(m string) error {
		if err := s.WriteText(m); err != nil {
			return err
		}
		_, p, err := s.ReadMessage()
		if err == nil && string(p) != m {
			t.Fatalf("echo %d bytes, want %d", len(p), len(m))
		}
		return err
	}, 8)
}

// The same limit in the inner router's own r.Use holds nothing back.
func TestH2NestedRouterInnerBodyLimit(t *testing.T) {
	inner := router.New(router.WithConfig(quiet))
	inner.Use(func(next http.Handler) http.Handler { return http.MaxBytesHandler(next, 512) })
	router.WS(inner, "/inner/ws", nil, rvEcoEcho)
	outer := router.New(router.WithConfig(quiet))
	outer.Handle("/inner/", inner)
	h := h2pServe(t, outer, nil)
	t.Cleanup(func() { rvrw2Shut(inner) })

	s, _ := h2pDial(t, h, "/inner/ws")
	defer s.CloseNow()
	rvrw2EchoMany(t, func(m string) error {
		if err := s.WriteText(m); err != nil {
			return err
		}
		_, p, err := s.ReadMessage()
		if err == nil && string(p) != m {
			t.Fatalf("echo %d bytes, want %d", len(p), len(m))
		}
		return err
	}, 8)
}

// rvrw2Shut shuts r down within 5 s.
func rvrw2Shut(r *router.Router) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = r.Shutdown(ctx)
}

// docs/http2.md: middleware in r.Use is kept off the socket by the two-phase
// hand-off; only wrappers in front of the router "see that stream as one
// long request" and hold what they hold for the socket's life. The outer
// router's r.Use is such middleware for a router mounted in it: its
// ServeHTTP must return while the inner router's socket is open, as it does
// for the router's own ws routes over HTTP/2.
func TestH2NestedRouterMiddlewareReturns(t *testing.T) {
	returned := make(chan string, 4)
	inner := router.New(router.WithConfig(quiet))
	router.WS(inner, "/inner/ws", nil, rvEcoEcho)
	outer := router.New(router.WithConfig(quiet))
	outer.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			returned <- r.URL.Path
		})
	})
	outer.Handle("/inner/", inner)
	h := h2pServe(t, outer, nil)
	t.Cleanup(func() { rvrw2Shut(inner) })

	s, _ := h2pDial(t, h, "/inner/ws")
	defer s.CloseNow()
	h2pEcho(t, s, "open")
	select {
	case <-returned:
	case <-time.After(2 * time.Second):
		t.Fatal("the outer router's middleware is still running while the inner router's socket is open")
	}
}

// A router mounted in a router that has ws routes of its own: over
// HTTP/1.1 the outer router hands an upgrade for the inner router's path to
// it (TestCornerNestedRouterUpgradeReportedOnce); over HTTP/2 the same
// WebSocket must open too (docs/http2.md: "Same route").
func TestH2NestedRouterReachedBesideOwnWSRoutes(t *testing.T) {
	inner := router.New(router.WithConfig(quiet))
	router.WS(inner, "/inner/ws", nil, rvEcoEcho)
	outer := router.New(router.WithConfig(quiet))
	router.WS(outer, "/ws", nil, rvEcoEcho)
	outer.Handle("/inner/", inner)
	h := h2pServe(t, outer, nil)
	t.Cleanup(func() { rvrw2Shut(inner) })

	s, resp, err := h.client.Dial(t.Context(), h.base+"/inner/ws", nil)
	if err != nil {
		t.Fatalf("HTTP/2 WebSocket to the mounted router: %v (%v)", err, resp != nil && resp.StatusCode == 404)
	}
	defer s.CloseNow()
	h2pEcho(t, s, "inner")
}
