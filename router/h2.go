package router

import (
	"errors"
	"net/http"

	"github.com/colibri-ws/colibri/internal/group"
)

// WebSockets over HTTP/2 (RFC 8441) take the same ws routes as HTTP/1.1
// upgrades: handshake.IsUpgradeRequest recognises an extended CONNECT,
// the route's pattern has no method so it matches CONNECT too, and
// handshake.CheckRequest, handshake.CheckOrigin, the middleware and
// shouldUpgrade run unchanged. Only the
// hand-off differs. An HTTP/2 stream cannot be hijacked and ends when
// ServeHTTP returns, so the connection is served in ServeHTTP's goroutine
// instead of one of its own.

// serveStream leaves serve, which serves an extended CONNECT's stream,
// to Router.ServeHTTP, which runs it after it has reported the handshake.
func serveStream(r *http.Request, serve func()) {
	p, _ := r.Context().Value(pendingKey{}).(*pending)
	p.serve = serve
}

// refuseBusy answers 503 to an upgrade that g cannot take.
func refuseBusy(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", "1")
	msg := "server is shutting down"
	if errors.Is(err, group.ErrFull) {
		msg = "too many WebSocket connections; try again later"
	}
	http.Error(w, msg, http.StatusServiceUnavailable)
}
