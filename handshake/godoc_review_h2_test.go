package handshake_test

// Accept over HTTP/2 (RFC 8441) behind a ResponseWriter wrapper, checked
// through a loopback TLS socket with the x/net/http2 client.

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/h2test"
	_ "github.com/colibri-ws/colibri/internal/xconnect" // extended CONNECT for this test binary
)

// gdrH2Serve serves h over TLS with HTTP/2 on a loopback port and returns
// its https:// base URL and an HTTP/2 client.
func gdrH2Serve(t *testing.T, h http.Handler) (string, *h2test.Client) {
	t.Helper()
	srv, ln, pool := h2test.Server(t, h)
	client := h2test.NewClient(pool)
	served := make(chan struct{})
	go func() { _ = srv.ServeTLS(ln, "", ""); close(served) }()
	t.Cleanup(func() {
		client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
		<-served
	})
	return "https://" + ln.Addr().String(), client
}

// Accept: "On a refusal it writes the HTTP error itself and returns a
// *Error"; over HTTP/1.1 a ResponseWriter that cannot be hijacked gets a
// 500 and an *Error (TestAcceptCornerHijackUnsupportedIsARefusal and
// TestGodocAcceptErrorUnwrapsTheHijackFailure). Over HTTP/2 the same
// wrapper (no Flusher, no Unwrap) cannot carry a stream: Accept should
// refuse alike, before anything is written. It writes 200 first, which
// opens the WebSocket at the client (RFC 8441 §5), and returns an error
// that is no *Error, so a caller that answers such failures itself writes
// into the stream the client takes for a WebSocket.
func TestGodocAcceptHTTP2BehindAWriterThatCannotFlush(t *testing.T) {
	accepted := make(chan error, 1)
	base, client := gdrH2Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := handshake.Accept(noHijackWriter{w}, r, nil)
		accepted <- err
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, resp, err := client.Dial(ctx, base+"/ws", nil)
	if s != nil {
		s.CloseNow()
	}
	aerr := cornerWait(t, accepted, "Accept")
	if err == nil || resp == nil || resp.StatusCode != http.StatusInternalServerError {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Errorf("extended CONNECT behind a writer that cannot flush: answered %d (%v), want 500", status, err)
	}
	if e, ok := errors.AsType[*handshake.Error](aerr); !ok || e.Status != http.StatusInternalServerError {
		t.Errorf("Accept returned %T %v, want the *Error of a 500", aerr, aerr)
	}
}
