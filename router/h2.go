package router

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/colibri-ws/colibri/wsconn"
)

// WebSockets over HTTP/2 (RFC 8441) take the same ws routes as HTTP/1.1
// upgrades: IsUpgradeRequest recognises an extended CONNECT, the route's
// pattern has no method so it matches CONNECT too, and CheckRequest,
// CheckOrigin, the middleware and shouldUpgrade run unchanged. Only the
// hand-off differs. An HTTP/2 stream cannot be hijacked and ends when
// ServeHTTP returns, so the connection is served in ServeHTTP's goroutine
// instead of being handed to one of the Group's own.

// startStream is start for an extended CONNECT: it claims a place in g,
// answers 200 and leaves pending.serve to serve the stream, which
// Router.ServeHTTP runs after it has reported the handshake.
func (rt *wsRoute[T]) startStream(w http.ResponseWriter, r *http.Request, g *wsconn.Group, value T) (int, error) {
	p, _ := r.Context().Value(pendingKey{}).(*pending)
	ctx, leave, err := g.Enter(r.Context())
	if err != nil {
		refuseBusy(w, err)
		return http.StatusServiceUnavailable, nil
	}
	u, err := wsconn.Accept(w, r, rt.acceptOptions(w, g))
	if err != nil {
		leave()
		rt.log.Debug("handshake failed", slog.Any("err", err))
		if he, ok := errors.AsType[*wsconn.HandshakeError](err); ok {
			return he.Status, nil
		}
		return http.StatusInternalServerError, err
	}
	u.Route = rt.route
	p.serve = func() {
		defer leave()
		_ = wsconn.Serve(ctx, u, value, rt.handler, &rt.cfg)
	}
	return http.StatusOK, nil
}

// refuseBusy answers 503 to an upgrade that g cannot take.
func refuseBusy(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", "1")
	msg := "server is shutting down"
	if errors.Is(err, wsconn.ErrGroupFull) {
		msg = "too many WebSocket connections; try again later"
	}
	http.Error(w, msg, http.StatusServiceUnavailable)
}
