package middleware_test

// Claims of the middleware package's doc comments that no other test
// pins, checked against the package's source and through loopback
// sockets with net/http's client and the x/net/http2 client (RFC 8441).

import (
	"context"
	"go/build"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/wsconn"
)

// doc.go: "From colibri, the package imports only handshake, whose origin
// check Origins shares with the ws routes, and the application's logger
// in the request context".
func TestGodocMiddlewareImportsOnlyHandshakeAndTheLogger(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{
		"github.com/colibri-ws/colibri/handshake":       true,
		"github.com/colibri-ws/colibri/internal/logctx": true, // the logger in the request context
	}
	for _, p := range pkg.Imports {
		if strings.HasPrefix(p, "github.com/colibri-ws/colibri/") && !allowed[p] {
			t.Errorf("middleware imports %s", p)
		}
	}
}

// Log's upgrade attribute: "accepted" when a ws route recorded its
// decision "(or when the handler wrote 101 itself)"; the package doc: "Log
// can tell an accepted upgrade from a refused one". Over HTTP/2 a handler
// that accepts with handshake.Accept writes the 200 that opens the
// WebSocket (RFC 8441): Log must not call that upgrade refused.
func TestGodocLogHTTP2UpgradeAcceptedByTheHandler(t *testing.T) {
	logger, logs := newSink()
	hello := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return out.WriteText(ctx, "hello")
	}
	h := middleware.Log(logger)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, nil)
		if err != nil {
			return
		}
		_ = wsconn.Serve(context.WithoutCancel(r.Context()), u, struct{}{}, hello, &wsconn.Config{Logger: quietLogger})
	}))
	base, client := h2Serve(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	s, _, err := client.Dial(ctx, base+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	if op, msg, err := s.ReadMessage(); err != nil || op != ws.OpText || string(msg) != "hello" {
		t.Fatalf("first message %v %q %v", op, msg, err)
	}
	if _, _, err := s.ReadMessage(); err == nil {
		t.Fatal("the WebSocket goes on after the handler returned")
	}
	line := logs.next(t, map[string]any{"msg": "request", "path": "/ws"})
	wantAttrs(t, line, map[string]any{"method": "CONNECT", "status": int64(http.StatusOK), "upgrade": "accepted"})
}

// Origins: plain "localhost" matches no port but its scheme's default,
// which counts as given and as left out: "http://localhost:80" passes,
// ":3000" does not.
func TestGodocOriginsPlainHostMatchesTheDefaultPortOnly(t *testing.T) {
	srv := httptest.NewServer(middleware.Origins("localhost")(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "through")
	})))
	defer srv.Close()
	for _, tc := range []struct {
		origin string
		status int
	}{
		{"http://localhost", http.StatusOK},
		{"http://localhost:3000", http.StatusForbidden},
		{"http://localhost:80", http.StatusOK},
		{"https://localhost:443", http.StatusOK},
	} {
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "api.test" // not the page's host
		req.Header.Set("Origin", tc.origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf(`Origins("localhost"), Origin %q: %d, want %d`, tc.origin, resp.StatusCode, tc.status)
		}
	}
}
