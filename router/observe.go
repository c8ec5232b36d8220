package router

import (
	"net/http"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

// WithObserver sets the observer of upgrades and connections, a
// wsconn.Observer (the observe package makes one). Passed to New it is
// told how every upgrade request the router serves ended (except the 503s
// an app answers for a route, when full or shutting down, which go to the
// app's Config.Observer) and watches the
// connections of all its ws routes; passed to WS it watches that route's
// connections only, in place of the router's. It takes precedence over
// the Observer of the wsconn.Config set with WithConfig, which otherwise
// serves as the router's. Default nil: nothing is observed.
func WithObserver(o wsconn.Observer) Option {
	return func(w *wsOptions) { w.observer = o }
}

// upgradeObserver returns the observer of the router's upgrade requests:
// WithObserver's, else its Config's.
func (o *wsOptions) upgradeObserver() wsconn.Observer {
	if o.observer != nil {
		return o.observer
	}
	return o.config.Observer
}

// upgradeBegins returns the time an observed upgrade request arrived, or
// the zero time when nobody observes.
func (r *Router) upgradeBegins() time.Time {
	if r.opts.upgradeObserver() == nil {
		return time.Time{}
	}
	return time.Now()
}

// upgradeEnded tells the router's observer how an upgrade request ended.
func (r *Router) upgradeEnded(req *http.Request, began time.Time, status int, err error) {
	o := r.opts.upgradeObserver()
	if o == nil {
		return
	}
	_, route := r.root.ws.Handler(req)
	if route == "" && r.root.everywhere != nil {
		route = "/"
	}
	accepted := err == nil && (status == http.StatusSwitchingProtocols ||
		handshake.IsExtendedConnect(req) && status >= 200 && status < 300)
	o.Upgraded(req, wsconn.UpgradeResult{Route: route, Accepted: accepted, Status: status, Duration: time.Since(began), Err: err})
}

// statusSent returns the status the client receives for what the chain
// wrote: 200 when it wrote no final status of its own (none, or only an
// informational one such as 103 Early Hints).
func (r *recorder) statusSent() int {
	if r.status < 200 && r.status != http.StatusSwitchingProtocols {
		return http.StatusOK // nothing final was written: net/http sends 200
	}
	return r.status
}
