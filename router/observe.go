package router

import (
	"net/http"
	"time"

	"github.com/colibri-ws/colibri/wsconn"
)

// Observer watches a router's WebSocket traffic: how each upgrade request
// ended and, as a wsconn.Observer, the connections its ws routes accept.
// The observe package implements it with OpenTelemetry. Set it with
// WithObserver.
type Observer interface {
	wsconn.Observer

	// Upgraded reports how an upgrade request ended. It is called once for
	// every request that asks for a WebSocket upgrade, on the request's
	// goroutine, after the 101 response or the refusal was written and,
	// for an accepted connection, after it was handed over. req is the
	// request as the router received it.
	Upgraded(req *http.Request, u UpgradeResult)
}

// UpgradeResult says how an upgrade request ended.
type UpgradeResult struct {
	// Route is the pattern of the ws route the request matched, as
	// ServeMux has it (without a method: "/ws/chat/{room}"), or "" when
	// it matched none.
	Route string

	// Accepted says the client got its WebSocket: the status is 101
	// Switching Protocols or, for an HTTP/2 extended CONNECT (RFC 8441),
	// a 2xx, which opens the stream.
	Accepted bool

	// Status is the HTTP status the client received: 101 (or 200 over
	// HTTP/2) for an accepted connection, and otherwise the refusal's:
	// from the handshake checks (400, 403, 405, 426), from middleware
	// (401, 429), from Reject, 403 or the HTTP route's own status after
	// DontUpgrade, 404 without a matching route, 503 when the server is
	// full or shutting down, and 500 when the handshake failed after the
	// decision.
	Status int

	// Duration runs from the router receiving the request to the 101
	// response or the refusal: the middleware, the decision and the
	// handshake.
	Duration time.Duration

	// Err is why the handshake failed after the route decided to upgrade
	// (the client went away, the response could not be written); nil
	// otherwise.
	Err error
}

// WithObserver sets the observer of upgrades and connections. Passed to New
// it watches every ws route of the router and every upgrade request the
// router serves; passed to WS it watches that route's connections only,
// in place of the router's. It takes precedence over the Observer of the
// wsconn.Config set with WithConfig. Default nil: nothing is observed.
func WithObserver(o Observer) Option {
	return func(w *wsOptions) { w.observer = o }
}

// upgradeBegins returns the time an observed upgrade request arrived, or
// the zero time when nobody observes.
func (r *Router) upgradeBegins() time.Time {
	if r.opts.observer == nil {
		return time.Time{}
	}
	return time.Now()
}

// upgradeEnded tells the router's observer how an upgrade request ended.
func (r *Router) upgradeEnded(req *http.Request, began time.Time, status int, err error) {
	o := r.opts.observer
	if o == nil {
		return
	}
	_, route := r.root.ws.Handler(req)
	accepted := err == nil && (status == http.StatusSwitchingProtocols ||
		wsconn.IsExtendedConnect(req) && status >= 200 && status < 300)
	o.Upgraded(req, UpgradeResult{Route: route, Accepted: accepted, Status: status, Duration: time.Since(began), Err: err})
}

// statusSent returns the status the client receives for what the chain
// wrote: 200 when it wrote no status of its own.
func (r *recorder) statusSent() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
