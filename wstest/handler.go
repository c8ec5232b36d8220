package wstest

import (
	"context"
	"net/http"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

// HandlerOptions configures Handler.
type HandlerOptions struct {
	// Accept configures the handshake: subprotocols, origin checks,
	// response headers. Default: the handshake.AcceptOptions defaults.
	Accept *handshake.AcceptOptions
	// Config tunes each connection; set its Clock to a Clock to control
	// time. Its Compression, when enabled, is also what the handshake
	// accepts unless Accept enables its own. Default: the wsconn.Config
	// defaults.
	Config *wsconn.Config
}

// Handler returns an http.Handler that upgrades every request with
// handshake.Accept and serves handler on the connection with value as the
// session's Value, for testing a handler on its own, without a router.
// The session runs inside ServeHTTP, so a Server's cleanup waits for it.
// A refused handshake gets its HTTP error (for example 426 for a request
// that is not an upgrade).
func Handler[T any](value T, handler wsconn.Handler[T], opts *HandlerOptions) http.Handler {
	var o HandlerOptions
	if opts != nil {
		o = *opts
	}
	if o.Config != nil && o.Config.Compression.Enabled && (o.Accept == nil || !o.Accept.Compression.Enabled) {
		var a handshake.AcceptOptions
		if o.Accept != nil {
			a = *o.Accept
		}
		a.Compression = o.Config.Compression
		o.Accept = &a
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, o.Accept)
		if err != nil {
			return
		}
		// Without the request's cancellation, as handshake.Accept says:
		// over HTTP/2 it ends when the client resets its stream.
		_ = wsconn.Serve(context.WithoutCancel(r.Context()), u, value, handler, o.Config)
	})
}
