package wsconn_test

import (
	"context"
	"net/http"

	"github.com/colibri-ws/colibri/wsconn"
)

// One HTTP handler for WebSockets over HTTP/1.1 and over HTTP/2 (RFC 8441):
// Group.Run keeps the connection in the handler's goroutine, which an
// HTTP/2 stream needs (it ends when ServeHTTP returns) and an HTTP/1.1
// connection does not mind. The server must offer extended CONNECT (see
// the xconnect package) for browsers to send the HTTP/2 kind.
func ExampleGroup_Run() {
	var conns wsconn.Group
	hello := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		if s.HTTP2() {
			return out.WriteText(ctx, "hello over an HTTP/2 stream")
		}
		return out.WriteText(ctx, "hello over a connection of your own")
	}
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		err := conns.Run(r.Context(), func(ctx context.Context) {
			u, err := wsconn.Accept(w, r, nil) // 101 over HTTP/1.1, 200 over HTTP/2
			if err != nil {
				return // Accept has written the HTTP error
			}
			_ = wsconn.Serve(ctx, u, struct{}{}, hello, nil)
		})
		if err != nil {
			http.Error(w, "try again later", http.StatusServiceUnavailable)
		}
	})
}
