package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/group"
	"github.com/colibri-ws/colibri/internal/logctx"
	"github.com/colibri-ws/colibri/wsconn"
)

// Decision is what a ws route's shouldUpgrade function decides for a
// request: Upgrade, DontUpgrade or Reject.
type Decision struct {
	kind   decisionKind
	header http.Header
	status int
	body   string
}

type decisionKind uint8

const (
	upgrade decisionKind = iota
	dontUpgrade
	reject
)

// Upgrade accepts the request; header holds extra headers for the 101
// response (the 200 over HTTP/2) and for no other response the request
// may get instead (nil for none). The handshake's own fields in it are
// ignored, however spelled.
func Upgrade(header http.Header) Decision { return Decision{kind: upgrade, header: header} }

// DontUpgrade declines the upgrade: the request goes on as an ordinary HTTP
// request, answered by an HTTP route on the same path if there is one, and
// otherwise by 403 Forbidden. An HTTP/2 extended CONNECT is not an ordinary
// request (a 2xx answer would open the WebSocket), so it always gets 403.
func DontUpgrade() Decision { return Decision{kind: dontUpgrade} }

// Reject refuses the request with an HTTP status (401, 403, 429, ...),
// extra response headers (nil for none) and a plain-text body. A status
// outside 400–599 becomes 403. The headers are added to those middleware
// set; a 401 needs WWW-Authenticate there (RFC 9110 §15.5.2), and a 429 or
// 503 may say Retry-After. Fields that describe the body (Content-Type,
// Content-Length, Content-Encoding, Content-Range, Transfer-Encoding), the
// connection (Connection, Keep-Alive, Proxy-Connection, TE, Upgrade) or
// the handshake (Sec-WebSocket-*) are the router's and are ignored,
// however spelled. A
// body that does not end in a newline gets one, as every plain-text answer
// of the router and of http.Error ends in one; an empty body stays empty.
func Reject(status int, header http.Header, body string) Decision {
	return Decision{kind: reject, status: status, header: header, body: body}
}

// ShouldUpgrade decides whether a request becomes a WebSocket, and
// produces the value the handler receives in Session.Value. It runs after
// the route's middleware, so it sees what they put in the request's
// context (the authenticated user, for example).
type ShouldUpgrade[T any] func(r *http.Request) (T, Decision)

// WS registers a ws route on r: requests matching pattern (ServeMux
// syntax, method GET or none) that ask for a WebSocket upgrade pass through
// the route's middleware, then shouldUpgrade decides; on Upgrade the
// handshake completes and handler serves the connection. A nil
// shouldUpgrade always upgrades with T's zero value.
//
// The upgrade may come as an HTTP/1.1 Upgrade or, on a server that offers
// extended CONNECT, as an HTTP/2 stream (RFC 8441): the same middleware,
// origin check, decision and handler serve both, and Conn.HTTP2 tells them
// apart.
//
// WS is a function rather than a method because methods cannot have type
// parameters; T is inferred from shouldUpgrade and handler.
func WS[T any](r *Router, pattern string, shouldUpgrade ShouldUpgrade[T], handler wsconn.Handler[T], opts ...Option) {
	r.root.ws.Handle(wsPath(pattern), newWSRoute(r, wsPath(pattern), shouldUpgrade, handler, opts))
}

// newWSRoute makes a ws route for path, wrapped in r's middleware.
func newWSRoute[T any](r *Router, path string, shouldUpgrade ShouldUpgrade[T], handler wsconn.Handler[T], opts []Option) http.Handler {
	o := r.opts
	for _, opt := range opts {
		opt(&o)
	}
	cfg := o.config
	if o.observer != nil {
		cfg.Observer = o.observer
	}
	route := &wsRoute[T]{should: shouldUpgrade, handler: handler, opts: o, cfg: cfg,
		root: r.root, group: r, route: path}
	r.routed = true
	r.root.hasWS = true
	return chain(r.mws, route)
}

type wsRoute[T any] struct {
	should  ShouldUpgrade[T]
	handler wsconn.Handler[T]
	opts    wsOptions
	cfg     wsconn.Config // Logger nil: the request context's (logConfig)
	route   string        // the pattern as ServeMux has it, for Conn.Route
	root    *root
	group   *Router // the group registered in, whose middleware wraps the route
}

// logger returns the logger of the route's lines about r: the one its
// Config names, else the one r's context carries (the application's, see
// app.Config.Logger), else slog.Default().
func (rt *wsRoute[T]) logger(r *http.Request) *slog.Logger {
	if rt.cfg.Logger != nil {
		return rt.cfg.Logger
	}
	return logctx.From(r.Context())
}

// config returns the Config to serve r's connection with: the route's,
// with the request's logger when the route names none.
func (rt *wsRoute[T]) config(r *http.Request) *wsconn.Config {
	if rt.cfg.Logger != nil {
		return &rt.cfg
	}
	c := rt.cfg
	c.Logger = logctx.From(r.Context())
	return &c
}

// ServeHTTP runs inside the middleware chain: it validates the handshake,
// checks the origin and records the decision. It writes nothing on
// Upgrade; Router.ServeHTTP performs the handshake afterwards. A request
// that is no upgrade, sent by dispatch through the route's middleware,
// gets the handshake's error (426 for a plain GET).
func (rt *wsRoute[T]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e := handshake.CheckRequest(r); e != nil {
		if e.Status == http.StatusMethodNotAllowed && !handshake.IsExtendedConnect(r) {
			// Not a handshake, which is a GET (RFC 6455 §4.1), and no HTTP
			// route serves its method (dispatch sent it there otherwise):
			// the 405 names every method the path is served with.
			if allow := rt.root.otherMethods(r); len(allow) > 0 {
				methodNotAllowed(w, allow)
				return
			}
		}
		e.Write(w)
		return
	}
	p, _ := r.Context().Value(pendingKey{}).(*pending)
	if p == nil {
		http.Error(w, "router: ws route served outside its Router", http.StatusInternalServerError)
		return
	}
	if !rt.opts.anyOrigin {
		if e := handshake.CheckOrigin(r, rt.opts.origins); e != nil {
			e.Write(w)
			return
		}
	}
	// Every check runs before the decision, whose headers belong to the
	// 101 alone.
	if e := handshake.CheckExtensions(r, rt.cfg.Compression); e != nil {
		e.Write(w)
		return
	}
	var value T
	d := Upgrade(nil)
	if rt.should != nil {
		value, d = rt.should(r)
	}
	switch d.kind {
	case dontUpgrade:
		rt.decline(w, r, p)
		return
	case reject:
		status := d.status
		if status < 400 || status > 599 {
			status = http.StatusForbidden
		}
		h := w.Header()
		for k, v := range d.header {
			if ck := http.CanonicalHeaderKey(k); !routerField(ck) {
				h[ck] = append(h[ck], v...)
			}
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(status)
		if d.body != "" {
			_, _ = io.WriteString(w, d.body)
			if !strings.HasSuffix(d.body, "\n") {
				_, _ = io.WriteString(w, "\n")
			}
		}
		return
	}
	// The place among the open connections is claimed now, so that a full
	// or stopping server answers inside the middleware, which sees the
	// 503 (a logger records what the client got), and so that the
	// connection counts from the moment the client sees the 101.
	g := group.From(r.Context())
	if g == nil {
		g = &rt.root.sessions
	}
	place, err := g.Enter(r.Context())
	if err != nil {
		if g.Refuse != nil {
			g.Refuse(w, r, err)
			p.reported = true
			return
		}
		refuseBusy(w, err)
		return
	}
	if p.place != nil {
		// Middleware ran the route twice for one request: one place.
		group.Leave(p.place)
	}
	p.place = place
	// What the decision adds belongs to the 101 alone: start adds it to
	// the handshake's headers, never to a response the request may still
	// get (middleware answering after all).
	p.header = d.header
	// Visible to middleware such as a request logger: the upgrade was
	// accepted. The handshake writes its own headers, so without
	// middleware nobody would read these (the root's middleware is fixed
	// once it serves). Over HTTP/2 too, where Accept removes the Upgrade
	// header before its 200 (RFC 9113 §8.2.2), so it never reaches the
	// wire, and there is no Connection header. A refusal after the
	// decision puts back what these names held before (p.before).
	if len(rt.group.mws) > 0 || len(rt.root.mws) > 0 || p.nested {
		h := w.Header()
		p.before = keep(keep(nil, h, "Upgrade"), h, "Connection")
		// One allocation for both values; each slice is capped, so that
		// appending to one cannot reach the other.
		v := []string{"websocket", "Upgrade"}
		h["Upgrade"] = v[0:1:1]
		if !handshake.IsExtendedConnect(r) {
			h["Connection"] = v[1:2:2]
		}
	}
	p.logger, p.route = rt.logger(r), rt.route
	p.start = func(w http.ResponseWriter, body io.ReadCloser, place context.Context, header http.Header) (int, error) {
		if r.ProtoMajor != 1 && r.Body != body {
			r = r.WithContext(r.Context())
			r.Body = body
		}
		return rt.start(w, r, place, value, header)
	}
}

// decline sends a declined upgrade on as an ordinary request. When the
// HTTP route on its path was registered in the same group, whose
// middleware has run for this request already, its handler answers here,
// inside that middleware, as if this ws route were not there; a route of
// another group answers through its own middleware (dispatch sends it
// there). Without one, and for an extended CONNECT, which is never an
// ordinary request (a 2xx answer would open the stream as a WebSocket),
// the answer is 403, written here so that the middleware sees it.
func (rt *wsRoute[T]) decline(w http.ResponseWriter, r *http.Request, p *pending) {
	h, pattern := rt.root.mux.Handler(r)
	switch hr, ok := h.(*httpRoute); {
	case pattern == "" || handshake.IsExtendedConnect(r):
		http.Error(w, "this WebSocket endpoint declined the upgrade", http.StatusForbidden)
	case ok && hr.group == rt.group:
		rt.root.inner.ServeHTTP(w, r)
	default:
		p.declined = true
	}
}

// keep records in before what h holds under name (nil: nothing), unless
// it is recorded already, and returns before.
func keep(before, h http.Header, name string) http.Header {
	if _, ok := before[name]; ok {
		return before
	}
	if before == nil {
		before = make(http.Header)
	}
	before[name] = h[name]
	return before
}

// putBack undoes what the decision added to h (see keep).
func putBack(h, before http.Header) {
	for k, v := range before {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
}

// start performs the handshake and hands the connection over to be served
// in place, the place in its group that the decision claimed. It returns
// the status the client received (101, or 200 for an HTTP/2 stream, when
// the connection was handed over), and the handshake's error when it
// failed after the decision.
func (rt *wsRoute[T]) start(w http.ResponseWriter, r *http.Request, place context.Context, value T, header http.Header) (int, error) {
	opts := rt.acceptOptions(w)
	if len(header) > 0 {
		// The decision's headers go to the 101 (or 200) alone, added to
		// what middleware set on the response, which an error answer
		// keeps to itself.
		h := opts.Header.Clone()
		if h == nil {
			h = make(http.Header, len(header))
		}
		for k, v := range header {
			ck := http.CanonicalHeaderKey(k)
			h[ck] = append(h[ck], v...)
		}
		opts.Header = h
	}
	if r.ProtoMajor == 1 {
		watch := &hijackWatch{ResponseWriter: w, place: place}
		w = watch
		// After Start (or Leave), so that a forced shutdown always finds
		// one of the two members to close.
		defer watch.release()
	}
	u, err := handshake.Accept(w, r, &opts)
	if err != nil {
		group.Leave(place)
		rt.logger(r).LogAttrs(r.Context(), slog.LevelDebug, "handshake failed",
			slog.String("route", rt.route), slog.Any("err", err))
		if he, ok := errors.AsType[*handshake.Error](err); ok && he.Unwrap() == nil {
			return he.Status, nil // a refusal of the request itself
		}
		return http.StatusInternalServerError, err
	}
	u.Route = rt.route
	cfg := rt.config(r)
	if u.HTTP2 {
		serveStream(r, func() { _ = wsconn.Serve(place, u, value, rt.handler, cfg) })
		return http.StatusOK, nil
	}
	// The connection gives its place in g back when it is over.
	_ = wsconn.Start(place, u, value, rt.handler, cfg)
	return http.StatusSwitchingProtocols, nil
}

// routerField reports whether the canonical header name k is one a
// refusal's headers leave to the router: the fields that describe its
// plain-text body, the connection-specific ones (malformed over HTTP/2,
// RFC 9113 §8.2.2) and the handshake's.
func routerField(k string) bool {
	switch k {
	case "Content-Type", "Content-Length", "Content-Encoding", "Content-Range", "Transfer-Encoding",
		"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Upgrade":
		return true
	}
	return strings.HasPrefix(k, "Sec-Websocket-")
}

// hijackWatch lets a forced shutdown reach a handshake that is still
// writing its 101 (to a client that does not read, a large response can
// wait on the socket for the route's whole WriteTimeout): once Accept has
// hijacked the connection, the connection is a member of the place's
// group that CloseNow closes, until it has joined as a WebSocket.
type hijackWatch struct {
	http.ResponseWriter
	place  context.Context
	member hijacked // joined once nc is set
}

// hijacked is a hijacked connection as its group sees it before the
// WebSocket joins: there is nothing to close gracefully yet (the
// WebSocket, once served, is told to shut down when it joins).
type hijacked struct{ nc net.Conn }

func (h *hijacked) Shutdown(frames.CloseCode) {}
func (h *hijacked) CloseNow()                 { _ = h.nc.Close() }

func (w *hijackWatch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.member.nc = nc
		group.Join(w.place, &w.member)
	}
	return nc, rw, err
}

func (w *hijackWatch) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *hijackWatch) release() {
	if w.member.nc != nil {
		group.Quit(w.place, &w.member)
	}
}

// Option configures ws routes: passed to New it sets the defaults of all
// the router's ws routes; passed to WS it applies to that route.
type Option func(*wsOptions)

type wsOptions struct {
	subprotocols []string
	origins      []string
	anyOrigin    bool
	config       wsconn.Config
	observer     wsconn.Observer
}

// WithSubprotocols lists the subprotocols the route speaks; the client's
// most preferred one among them is negotiated. Default none.
func WithSubprotocols(names ...string) Option {
	return func(o *wsOptions) { o.subprotocols = names }
}

// WithOrigins allows cross-origin handshakes from hosts matching patterns
// (path.Match syntax on host[:port], e.g. "*.example.com"). Same-host
// requests and requests without Origin are always allowed. Default: none
// besides the same host, which protects against cross-site WebSocket
// hijacking. WithOrigins and WithAnyOrigin set one origin policy: the
// one given last applies, so a route's WithOrigins turns the check back on
// under a router's WithAnyOrigin.
func WithOrigins(patterns ...string) Option {
	return func(o *wsOptions) { o.origins, o.anyOrigin = patterns, false }
}

// WithAnyOrigin turns the origin check off. Only for endpoints that rely on
// no ambient credentials (cookies, HTTP auth, client certificates). It
// replaces the patterns of an earlier WithOrigins.
func WithAnyOrigin() Option {
	return func(o *wsOptions) { o.origins, o.anyOrigin = nil, true }
}

// WithConfig sets the connection configuration (limits, keep-alive,
// timeouts, logger); see wsconn.Config for every field and default. Given
// to a route, it replaces the router's Config as a whole, not field by
// field. A Config without a Logger logs to the one the request's context
// carries: the application's (app.Config.Logger), else slog.Default().
func WithConfig(cfg wsconn.Config) Option {
	return func(o *wsOptions) { o.config = cfg }
}

// Everywhere returns a registration of one shouldUpgrade and handler for
// every upgrade request, whatever its path, even one ServeMux would not
// take as it is ("/a//b"): the closure form for applications without ws
// routes (see app.Config.WebSocket). Requests that are declined or not
// upgrades go to the application's handler, except a declined upgrade to a
// path ServeMux would clean ("/a//b"), which gets ServeMux's redirect; an
// app hands a non-GET request carrying Upgrade to its handler directly.
// Registered on a router with ws routes, it takes the upgrades none of
// them matches.
func Everywhere[T any](shouldUpgrade ShouldUpgrade[T], handler wsconn.Handler[T], opts ...Option) func(*Router) {
	return func(r *Router) {
		r.root.everywhere = newWSRoute(r, "/", shouldUpgrade, handler, opts)
	}
}

// acceptOptions are the handshake options of the route; the 101 (or 200)
// is its first write, bounded by its WriteTimeout (10 s when that is zero
// or negative: a hijacked connection is never left to wait unbounded).
func (rt *wsRoute[T]) acceptOptions(w http.ResponseWriter) handshake.AcceptOptions {
	return handshake.AcceptOptions{
		Subprotocols:    rt.opts.subprotocols,
		SkipOriginCheck: true, // checked in ServeHTTP, where the answer can be an HTTP error
		Header:          w.Header(),
		Timeout:         rt.cfg.WriteTimeout,
		Compression:     rt.cfg.Compression,
	}
}
