package router_test

// Helpers shared by the test files of package router_test.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/gobwas/ws"

	"github.com/colibri-ws/colibri/internal/h2test"
)

// tlsServer returns a server for h with TLS, HTTP/1.1 and HTTP/2 on, the
// loopback listener it is to serve on and a pool trusting its certificate.
func tlsServer(t *testing.T, h http.Handler) (*http.Server, net.Listener, *x509.CertPool) {
	t.Helper()
	cert, pool := h2test.Certificate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	srv := &http.Server{
		Handler:   h,
		Protocols: &protos,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:  slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	return srv, ln, pool
}

// h2pDial opens a WebSocket over HTTP/2 to path on h and returns it with
// the 200 that opened it.
func h2pDial(t *testing.T, h *h2pServer, path string) (*h2test.Socket, *http.Response) {
	t.Helper()
	s, resp, err := h.client.Dial(context.Background(), h.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, resp
}

// h2pText expects the next message on s to be the text want.
func h2pText(t *testing.T, s *h2test.Socket, want string) {
	t.Helper()
	op, p, err := s.ReadMessage()
	if err != nil || op != ws.OpText || string(p) != want {
		t.Fatalf("got %v %q %v, want text %q", op, p, err, want)
	}
}

// h2pEcho sends text on s and expects it back.
func h2pEcho(t *testing.T, s *h2test.Socket, text string) {
	t.Helper()
	if err := s.WriteText(text); err != nil {
		t.Fatal(err)
	}
	h2pText(t, s, text)
}
