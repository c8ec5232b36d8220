package handshake_test

import (
	"context"
	"net/http"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

// One HTTP handler for WebSockets over HTTP/1.1 and over HTTP/2 (RFC 8441):
// serving the connection in the handler's goroutine suits both, and an
// HTTP/2 stream needs it (the stream ends when ServeHTTP returns). The
// server must offer extended CONNECT (see docs/http2.md) for browsers to
// send the HTTP/2 kind.
func ExampleAccept_http2() {
	hello := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		if s.HTTP2() {
			return out.WriteText(ctx, "hello over an HTTP/2 stream")
		}
		return out.WriteText(ctx, "hello over a connection of your own")
	}
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, nil) // 101 over HTTP/1.1, 200 over HTTP/2
		if err != nil {
			return // Accept has written the HTTP error
		}
		// Without the request's cancellation: it ends when the client
		// resets its stream, a failed transport rather than a shutdown
		// (which a cancelled Serve context means, and answers with 1001).
		_ = wsconn.Serve(context.WithoutCancel(r.Context()), u, struct{}{}, hello, nil)
	})
}
