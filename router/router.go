package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/group"
	"github.com/colibri-ws/colibri/internal/logctx"
	"github.com/colibri-ws/colibri/wsconn"
)

// Router is an http.Handler that routes by Go's ServeMux patterns
// ("GET /chat/{room}") to HTTP routes and ws routes, through middleware.
// Routes and middleware are registered at setup; a Router is safe for
// concurrent use once it serves.
//
// Middleware added with Use on the Router returned by New wraps every
// request, including those that match no route. Middleware added in a
// Group wraps only the routes registered in that group after it.
type Router struct {
	root *root
	mws  []func(http.Handler) http.Handler
	opts wsOptions
	top  bool // made by New, not by Group or With
	// routed is set once a route was registered in this group, after
	// which Use would not apply to it any more.
	routed bool
}

// root is what every group of one router shares.
type root struct {
	mux        http.ServeMux // HTTP routes, each an *httpRoute
	inner      http.ServeMux // the same routes without their group's middleware (see wsRoute.decline)
	ws         http.ServeMux // ws routes, path patterns without method
	everywhere http.Handler  // the route Everywhere registers, outside ws: it takes any path
	mounts     http.ServeMux // the HTTP routes that are Routers themselves
	hasWS      bool
	nests      bool // a Router is mounted as an HTTP route
	sessions   group.Group

	mu      sync.Mutex
	mws     []func(http.Handler) http.Handler
	handler http.Handler // mws around dispatch, built on first use
	built   atomic.Bool  // handler is set, and mws fixed
}

// New returns an empty Router. Options set the defaults of its ws routes.
func New(opts ...Option) *Router {
	r := &Router{root: &root{}, top: true}
	for _, o := range opts {
		o(&r.opts)
	}
	return r
}

// Use appends middleware. On the Router returned by New it wraps every
// request; in a group it wraps the group's routes registered afterwards.
// Use panics if called after the group registered a route or, on the
// top-level Router, after it started serving.
func (r *Router) Use(mws ...func(http.Handler) http.Handler) {
	if r.top {
		r.root.mu.Lock()
		defer r.root.mu.Unlock()
		if r.root.handler != nil {
			panic("router: Use after the router started serving")
		}
		r.root.mws = append(r.root.mws, mws...)
		return
	}
	if r.routed {
		panic("router: Use after routes were registered in this group; add middleware first")
	}
	r.mws = append(r.mws, mws...)
}

// Group calls fn with a group of r: routes registered in it get the
// group's middleware (Use inside fn) in addition to r's.
func (r *Router) Group(fn func(r *Router)) {
	fn(r.With())
}

// With returns a group of r with mws added, for inline use:
// r.With(auth).HandleFunc("GET /me", me).
func (r *Router) With(mws ...func(http.Handler) http.Handler) *Router {
	g := &Router{root: r.root, opts: r.opts}
	g.mws = append(append(make([]func(http.Handler) http.Handler, 0, len(r.mws)+len(mws)), r.mws...), mws...)
	return g
}

// Handle registers h for pattern, in ServeMux syntax: "[METHOD ][HOST]/[PATH]"
// with {name} and {name...} wildcards read by Request.PathValue. It panics
// on an invalid or conflicting pattern, as ServeMux does.
func (r *Router) Handle(pattern string, h http.Handler) {
	r.routed = true
	r.root.mux.Handle(pattern, &httpRoute{Handler: chain(r.mws, h), group: r})
	r.root.inner.Handle(pattern, h)
	if _, ok := h.(*Router); ok {
		// Its WebSockets are handed off past this router's middleware too,
		// and its HTTP/2 ones reach it (see dispatch).
		r.root.mounts.Handle(pattern, h)
		r.root.nests = true
	}
}

// httpRoute is an HTTP route's handler wrapped in its group's middleware,
// and the group it was registered in.
type httpRoute struct {
	http.Handler
	group *Router
}

// HandleFunc registers f for pattern; see Handle.
func (r *Router) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	r.Handle(pattern, http.HandlerFunc(f))
}

// ShutdownReport says how a shutdown ended the WebSocket connections that
// were open. Both fields count what Connections counts: connections, and
// upgrades their route accepted whose handshake had not finished.
type ShutdownReport struct {
	// Graceful connections were over before the deadline: their handler
	// and tasks returned and the transport was closed, after the closing
	// handshake (1001 Going Away) or after their peer was given up on
	// (CloseTimeout); an accepted upgrade whose handshake ended (or never
	// began) before it counts here too.
	Graceful int
	// Forced connections were still held at the deadline, this call's or
	// that of an earlier or concurrent Shutdown (their handler still
	// running, or their peer silent), and had their transport closed then.
	Forced int
}

// ErrShutdownIncomplete is returned by Shutdown when handlers were still
// running a second after their connections were force-closed.
var ErrShutdownIncomplete = group.ErrIncomplete

// Shutdown refuses new WebSocket upgrades with 503, sends 1001 Going Away
// to every open connection at once (after the message each is writing),
// and waits for their handlers until ctx ends; then it closes what remains
// without a handshake. Call it when serving the router with your own
// http.Server, alongside that server's Shutdown (at the same time: with
// WebSockets over HTTP/2, the server's Shutdown waits for their streams);
// the app package calls its own.
func (r *Router) Shutdown(ctx context.Context) (ShutdownReport, error) {
	rep, err := r.root.sessions.Shutdown(ctx)
	return ShutdownReport(rep), err
}

// Connections returns the number of WebSocket connections the router
// serves itself, counting from the route's decision to upgrade: an
// accepted upgrade whose handshake has not finished counts too. Under the
// app package, the app counts them instead (app.App.Connections).
func (r *Router) Connections() int { return r.root.sessions.Len() }

// ServeHTTP routes req. For a WebSocket upgrade request it runs the
// middleware chain and the ws route's decision as an ordinary request;
// when the route decided to upgrade and nothing was written, it performs
// the handshake on the original ResponseWriter and starts the connection
// in a goroutine of its own before returning (counted by the router, or by
// the app serving it). A WebSocket over HTTP/2 (RFC 8441) lives in the
// request's stream, so ServeHTTP serves it and returns when it closes.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rt := r.root
	h := rt.chain()
	if !rt.hasWS && !rt.nests || !handshake.IsUpgradeRequest(req) {
		h.ServeHTTP(w, req)
		return
	}
	began := r.upgradeBegins()
	obs := r.opts.upgradeObserver()
	// The WebSocket is served on the outermost router's writer and the
	// request's own body (over HTTP/2 its inbound stream), past the
	// middleware of every router on the way, as the two-phase hand-off
	// promises: a body limit in middleware must not cut it.
	p := &pending{observer: obs, w: w, body: req.Body}
	outer, _ := req.Context().Value(pendingKey{}).(*pending)
	if outer != nil {
		p.w, p.body, p.nested = outer.w, outer.body, true
		if sameObserver(outer.observer, obs) {
			// A router serving this one, with the same Observer: the
			// innermost router reports, once.
			outer.reported = true
		}
	}
	rec := &recorder{ResponseWriter: w, p: p}
	var reported bool
	defer func() {
		// A place the decision claimed for a handshake that never began
		// (middleware answered after the decision, or panicked) is
		// given back, and a panic is reported as a failed upgrade before
		// it goes on (net/http drops the request).
		if p.place != nil {
			group.Leave(p.place)
		}
		if v := recover(); v != nil {
			if !reported && !p.reported && rt.hasWS {
				status := http.StatusInternalServerError
				if rec.flushed {
					status = rec.statusSent() // it went out before the panic
				}
				r.upgradeEnded(req, began, status, fmt.Errorf("router: panic: %v", v))
			}
			panic(v)
		}
	}()
	ctx := context.WithValue(req.Context(), pendingKey{}, p)
	if rt.nests && group.From(ctx) == nil {
		// The WebSockets of routers mounted here count among this
		// router's connections (an app's, when one serves it): its
		// Shutdown reaches them, as it serves their HTTP/2 streams.
		ctx = group.With(ctx, &rt.sessions)
	}
	req = req.WithContext(ctx)
	h.ServeHTTP(rec, req)
	reported = true // from here on, by the paths below
	// An HTTP/2 stream, this router's or a mounted one's, is served once
	// reported and once every router's middleware has returned.
	defer p.handOn(outer)
	// The connection's context holds p: it keeps neither the writer nor
	// the body (routers this one serves have used them by now).
	ow, body := p.w, p.body
	p.w, p.body = nil, nil
	if p.start == nil {
		if !p.reported && rt.hasWS {
			status := rec.statusSent()
			switch {
			case rec.accepted && handshake.IsExtendedConnect(req):
				status = http.StatusOK // a mounted router's, past the recorder
			case rec.accepted || rec.hijacked:
				// A mounted router, or another WebSocket library, took the
				// connection; the 101 went out past the recorder.
				status = http.StatusSwitchingProtocols
			}
			r.upgradeEnded(req, began, status, nil)
		}
		return
	}
	if rec.hijacked {
		// Middleware took the connection after the route decided.
		r.upgradeEnded(req, began, http.StatusSwitchingProtocols, nil)
		return
	}
	if rec.wrote {
		p.logger.Warn("ws route decided to upgrade but middleware wrote a response; not upgrading",
			slog.String("route", p.route), slog.String("path", req.URL.Path))
		r.upgradeEnded(req, began, rec.statusSent(), nil)
		return
	}
	// The handler's context holds p (through the request's context):
	// empty it, so that a connection does not keep what p.start captured,
	// the request among it.
	start, place, header := p.start, p.place, p.header
	// The Upgrade and Connection the decision set were for middleware to
	// see; the handshake writes its own, and an error it answers must
	// not carry them.
	putBack(ow.Header(), p.before)
	p.start, p.logger, p.place, p.before, p.header = nil, nil, nil, nil, nil
	status, err := start(ow, body, place, header)
	if err == nil && (status == http.StatusSwitchingProtocols || status == http.StatusOK) {
		// The 101 (or HTTP/2's 200) went out past every writer:
		// tell a request logger in front of the router, or in the
		// middleware of a router serving this one (middleware.Log), that
		// the upgrade was accepted.
		noteAccepted(w)
	}
	r.upgradeEnded(req, began, status, err)
}

// handOn serves the HTTP/2 stream a ws route (this router's, or one
// mounted in it) left in p, or hands it to the router serving this one:
// the outermost router serves it, and net/http ends the stream when that
// ServeHTTP returns.
func (p *pending) handOn(outer *pending) {
	serve := p.serve
	if serve == nil {
		return
	}
	p.serve = nil
	if outer != nil {
		outer.serve = serve
		return
	}
	serve()
}

// chain returns the middleware around dispatch, built by the first
// request; later requests take no lock.
func (rt *root) chain() http.Handler {
	if rt.built.Load() {
		return rt.handler
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.handler == nil {
		rt.handler = chain(rt.mws, http.HandlerFunc(rt.dispatch))
		rt.built.Store(true)
	}
	return rt.handler
}

// dispatch sends upgrade requests to their ws route and everything else,
// including declined upgrades, to the HTTP routes.
func (rt *root) dispatch(w http.ResponseWriter, req *http.Request) {
	if p, _ := req.Context().Value(pendingKey{}).(*pending); p != nil {
		if route := rt.wsRoute(req); route != nil {
			if req.Method != http.MethodGet && !handshake.IsExtendedConnect(req) && rt.serves(req) {
				// No handshake (RFC 6455 §4.1), and an HTTP route serves
				// its method: it answers, through its own middleware, the
				// Upgrade ignored (RFC 9110 §7.8). Without one, the ws
				// route answers after its group's middleware (405).
				rt.mux.ServeHTTP(w, req)
				return
			}
			route.ServeHTTP(w, req)
			if !p.declined {
				return
			}
			// Declined, for an HTTP route of another group (see decline).
		} else if _, mount := rt.mounts.Handler(req); mount == "" && handshake.IsExtendedConnect(req) {
			// A 2xx answer to an extended CONNECT would open the stream
			// as a WebSocket, so HTTP routes never answer one, except a
			// Router mounted here, which has ws routes of its own.
			http.Error(w, "no WebSocket endpoint at this path", http.StatusNotFound)
			return
		}
	} else if rt.hasWS {
		// A plain request to a WebSocket-only path: the ws route says so
		// (426 for a GET) instead of 404, after the route's middleware, so
		// that authentication in a group answers first and the route is
		// not revealed to whoever it refuses.
		if _, pattern := rt.mux.Handler(req); pattern == "" {
			if route := rt.wsRoute(req); route != nil {
				if allow := rt.otherMethods(req); req.Method != http.MethodGet && len(allow) > 0 {
					methodNotAllowed(w, allow)
					return
				}
				route.ServeHTTP(w, req)
				return
			}
		}
	}
	rt.mux.ServeHTTP(w, req)
}

// wsRoute returns the ws route for req, or nil.
func (rt *root) wsRoute(req *http.Request) http.Handler {
	if _, pattern := rt.ws.Handler(req); pattern != "" {
		return &rt.ws // sets the pattern's path values on req
	}
	return rt.everywhere
}

// methodNotAllowed answers 405 to a request for a path that HTTP routes
// serve with the methods allow, and the ws route with GET: the Allow
// header names them all (RFC 9110 §15.5.6).
func methodNotAllowed(w http.ResponseWriter, allow []string) {
	if !slices.Contains(allow, http.MethodGet) {
		allow = append(allow, http.MethodGet)
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

// otherMethods returns the methods for which an HTTP route serves req's
// path; it is asked only on the way to an error.
func (rt *root) otherMethods(req *http.Request) []string {
	var allow []string
	probe := *req
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		probe.Method = m
		if m != req.Method && rt.serves(&probe) {
			allow = append(allow, m)
		}
	}
	return allow
}

// serves reports whether an HTTP route serves req as it is (a redirect
// to a cleaned path does not count).
func (rt *root) serves(req *http.Request) bool {
	h, _ := rt.mux.Handler(req)
	_, ok := h.(*httpRoute)
	return ok
}

// chain wraps h in mws, the first outermost.
func chain(mws []func(http.Handler) http.Handler, h http.Handler) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// pending carries a ws route's decision from inside the middleware chain
// out to Router.ServeHTTP.
type pending struct {
	start    func(w http.ResponseWriter, body io.ReadCloser, place context.Context, header http.Header) (status int, err error)
	serve    func()              // set by start for an HTTP/2 stream (see startStream)
	w        http.ResponseWriter // the outermost router's writer, which the handshake uses
	body     io.ReadCloser       // the request's own body, the HTTP/2 stream's inbound side
	place    context.Context     // the connection's place in its group, claimed with the decision
	reported bool                // the group's owner, or a router this one serves, reported it
	declined bool
	nested   bool            // a router serves this one: its middleware sees the decision too
	observer wsconn.Observer // the router's, for a router it serves (see ServeHTTP)
	logger   *slog.Logger
	route    string      // the ws route's pattern, for logger's lines
	header   http.Header // the decision's headers, for the 101 alone
	before   http.Header // what Upgrade and Connection held before the decision set them (see keep)
}

type pendingKey struct{}

// recorder notes whether the chain wrote a response, which rules out the
// upgrade; an interim 1xx (Early Hints) does not. A response written
// after the route accepted leaves out the Upgrade and Connection the
// decision set. It unwraps for http.ResponseController.
type recorder struct {
	http.ResponseWriter
	p        *pending
	wrote    bool
	flushed  bool // the response went out (Flush)
	hijacked bool // an HTTP route took the connection (another WebSocket library)
	accepted bool // a router this one serves accepted the upgrade (logctx.Accepted)
	status   int  // the final status written, 0 before
}

// writes notes that a response begins.
func (r *recorder) writes() {
	if !r.wrote && r.p.start != nil {
		putBack(r.ResponseWriter.Header(), r.p.before)
	}
	r.wrote = true
}

func (r *recorder) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		r.writes()
	}
	// Passed on before it is recorded: net/http panics on a code outside
	// 100–999 and sends nothing (Recover's 500 follows).
	r.ResponseWriter.WriteHeader(code)
	if r.status < 200 {
		r.status = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.writes()
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Flush() {
	r.writes()
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
		r.flushed = true
	}
}

// Hijack lets an HTTP route take an upgrade request's connection itself,
// as code that asserts http.Hijacker does (another WebSocket library):
// the router then upgrades nothing, and reports the upgrade accepted.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil {
		r.wrote, r.hijacked = true, true
	}
	return c, rw, err
}

// Unwrap returns the underlying ResponseWriter.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// WebSocketAccepted is how a router this one serves (mounted in it) tells
// it that it accepted the upgrade, past this recorder (logctx.Accepted).
func (r *recorder) WebSocketAccepted() { r.accepted = true }

// noteAccepted tells each writer of w's chain that implements
// logctx.Accepted that the upgrade was accepted.
func noteAccepted(w http.ResponseWriter) {
	for w != nil {
		if a, ok := w.(logctx.Accepted); ok {
			a.WebSocketAccepted()
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// wsPath turns a ws route pattern into a method-less ServeMux pattern: the
// handshake is GET over HTTP/1.1 and CONNECT over HTTP/2 (RFC 8441), and
// other methods get a clear 405 from the handshake check rather than from
// the mux.
func wsPath(pattern string) string {
	method, rest, ok := strings.Cut(pattern, " ")
	if !ok {
		return pattern
	}
	if method != http.MethodGet {
		panic("router: ws route " + pattern + ": WebSocket handshakes use GET")
	}
	return strings.TrimLeft(rest, " \t")
}

// sameObserver reports whether a and b are the same Observer. One whose
// type cannot be compared is the same as none.
func sameObserver(a, b wsconn.Observer) bool {
	if a == nil || b == nil {
		return false
	}
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Comparable() && a == b
}
