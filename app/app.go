// Package app runs a colibri application: an http.Handler (usually a
// router.Router) behind an http.Server, with the limits, TLS, upgrade hooks
// and the graceful shutdown that WebSocket servers need.
//
// # Lifecycle
//
// Run listens, serves, and stops when its context ends or the process gets
// SIGINT or SIGTERM. Stopping closes the listener, lets in-flight HTTP
// requests finish, and sends 1001 Going Away (or Config.ShutdownCode) to
// every open WebSocket of colibri's router (its ws routes and the closure
// form) after what its writer already accepted; handlers get until
// Config.ShutdownTimeout to return before their transports are closed. A
// handler that upgrades by itself (handshake.Accept and wsconn.Serve)
// serves a connection the App neither counts nor stops.
//
// # Upgrade requests
//
// Every WebSocket upgrade request first meets the application's
// Config.UpgradeHooks in order (each may refuse, go on, or take the
// connection over), then the closure form (Config.WebSocket) if set, and
// finally the handler. The connection limit (503 beyond
// Config.MaxConnections) applies where a route decides to upgrade, so a
// request that would not have become a connection gets its own answer.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/group"
	"github.com/colibri-ws/colibri/internal/logctx"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// Defaults used where a Config field is zero.
const (
	DefaultAddr              = ":8080"
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
)

// Config configures an App. The zero value serves plain HTTP on :8080 with
// the documented defaults.
type Config struct {
	// Addr is the TCP address to listen on. Default ":8080"; use
	// "127.0.0.1:0" for a free port (see OnListen).
	Addr string

	// TLSConfig serves TLS (wss://) when set; CertFile and KeyFile load a
	// certificate pair into it (or into a new one).
	TLSConfig         *tls.Config
	CertFile, KeyFile string

	// HTTP2 offers HTTP/2 to TLS clients (ALPN "h2") besides HTTP/1.1, so
	// that a browser's page, its requests and its WebSockets share one
	// connection (RFC 8441). The WebSockets ride on it only when net/http
	// offers extended CONNECT, which Go 1.26 does only when the process
	// starts with GODEBUG=http2xconnect=1; Serve logs which it is. Without
	// TLS it does nothing: browsers speak HTTP/2 over TLS only. Default
	// false: TLS clients get HTTP/1.1, as before. Either way the ALPN lists
	// of TLSConfig, and of the configurations its GetConfigForClient
	// returns, are made to agree ("h2" first, or no "h2").
	// docs/http2.md has the trade-offs.
	HTTP2 bool

	// ReadHeaderTimeout bounds reading a request's headers, which stops
	// clients that send them a byte at a time; it covers the upgrade
	// request too. (Writing the 101 response is bounded by the ws route's
	// wsconn.Config.WriteTimeout.) Default 10 s.
	ReadHeaderTimeout time.Duration

	// IdleTimeout is how long an HTTP keep-alive connection may wait for
	// its next request. Default 120 s.
	IdleTimeout time.Duration

	// MaxConnections caps open WebSocket connections (those of colibri's
	// router, counted from their route's decision to upgrade, as
	// Connections counts them); a decision to upgrade beyond it gets 503
	// Service Unavailable with Retry-After, while a request that would not
	// become a connection (no ws route, a refused handshake, a rejection)
	// gets its own answer. Default 0: no cap.
	MaxConnections int

	// RetryAfter is the Retry-After value sent with that 503, and with
	// the 503 to upgrades while shutting down. Default 1 s.
	RetryAfter time.Duration

	// ShutdownTimeout is how long Run waits, once stopping, for handlers
	// to finish their closing handshakes, and for plain HTTP requests to
	// end, before closing what remains. Default 10 s.
	ShutdownTimeout time.Duration

	// ShutdownCode is the close code every open WebSocket gets when the
	// App shuts down. Default 1001 Going Away; 1012 Service Restart tells
	// clients that the server is restarting and they may reconnect. A code
	// that may not be sent (RFC 6455 §7.4.1) is replaced by 1001.
	ShutdownCode wsconn.CloseCode

	// NoSignals stops Run from handling SIGINT and SIGTERM. Default false.
	NoSignals bool

	// Logger receives the application's log lines, and those of
	// everything it serves that has no logger of its own: connections of
	// ws routes whose wsconn.Config has no Logger (handler failures and
	// panics included), and the stock middleware.Log and
	// middleware.Recover made with a nil logger. The App puts it in every
	// request's context, where they find it. A logger set on a route with
	// router.WithConfig, or passed to a middleware, still wins. Default
	// slog.Default().
	Logger *slog.Logger

	// OnListen is called with the bound address once the listener is up,
	// before serving: tests use it with port 0. If it panics, the listener
	// is closed and the panic goes on to Run's (or Serve's) caller.
	OnListen func(addr net.Addr)

	// UpgradeHooks see every upgrade request, in order, before routing.
	UpgradeHooks []UpgradeHook

	// WebSocket is the closure form: one shouldUpgrade and handler for
	// every upgrade request, made with router.Everywhere. Requests it
	// declines, non-GET requests carrying Upgrade (no handshake), and
	// requests that are not upgrades go to the handler (a declined upgrade
	// to a path ServeMux would clean, "/a//b", gets ServeMux's redirect
	// instead).
	WebSocket func(*router.Router)

	// Observer is told about the upgrade requests the application refuses
	// itself (503 at MaxConnections or while shutting down, reported with
	// no route and no duration), and watches the closure form's upgrades and connections.
	// A router you make takes its own with router.WithObserver, usually
	// the same one; the observe package makes one. Default nil.
	Observer wsconn.Observer
}

// UpgradeHook sees an upgrade request before routing. It returns the
// request to continue with (the same one, or one with values added to its
// context for later stages), or nil when it dealt with the request itself:
// by writing a refusal, or by hijacking the connection to serve it some
// other way (another WebSocket library on the same port, for instance).
// An HTTP/2 upgrade (an extended CONNECT) has no connection to hijack.
type UpgradeHook func(w http.ResponseWriter, r *http.Request) *http.Request

// App is a colibri application. Create it with New; it is an http.Handler
// too, for use with a server you run yourself.
type App struct {
	cfg      Config
	handler  http.Handler // upgrade requests
	plain    http.Handler // other requests: the handler New was given
	sessions group.Group
	log      *slog.Logger

	mu   sync.Mutex
	addr net.Addr
}

// New returns an App serving handler (usually a *router.Router).
func New(handler http.Handler, cfg Config) *App {
	if handler == nil {
		handler = http.NotFoundHandler()
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	cfg.ReadHeaderTimeout = orDefault(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	cfg.IdleTimeout = orDefault(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.ShutdownTimeout = orDefault(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	cfg.RetryAfter = orDefault(cfg.RetryAfter, time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	plain := handler
	if cfg.WebSocket != nil {
		var opts []router.Option
		if cfg.Observer != nil {
			opts = append(opts, router.WithObserver(cfg.Observer))
		}
		r := router.New(opts...)
		cfg.WebSocket(r)
		r.Handle("/", handler)
		handler = r
	}
	// Requests that are no upgrade go straight to the application's
	// handler, not through the closure form's router, whose ServeMux would
	// redirect unclean paths and refuse CONNECT.
	a := &App{cfg: cfg, handler: handler, plain: plain, log: cfg.Logger}
	a.sessions.Limit = cfg.MaxConnections
	a.sessions.Refuse = a.refuse
	if c := cfg.ShutdownCode; c.Valid() {
		a.sessions.ShutdownCode = c
	}
	return a
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Connections returns the number of open WebSocket connections of
// colibri's router (ws routes and the closure form), counting from the
// route's decision to upgrade: an accepted upgrade whose handshake has not
// finished counts too.
func (a *App) Connections() int { return a.sessions.Len() }

// Addr returns the address Run is listening on, or nil before it listens.
func (a *App) Addr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr
}

// ServeHTTP puts the App's logger in the request's context, runs the
// upgrade hooks on upgrade requests and names the App's group, whose
// limit the route applies when it decides to upgrade, so that the App
// counts and shuts down the connections colibri's router serves, and
// serves the handler.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if logctx.From(r.Context()) != a.log {
		// Served by an http.Server other than Serve's, whose base
		// context carries the logger already.
		r = r.WithContext(logctx.With(r.Context(), a.log))
	}
	if !handshake.IsUpgradeRequest(r) {
		a.plain.ServeHTTP(w, r)
		return
	}
	if group.From(r.Context()) != &a.sessions {
		// Served by an http.Server other than Serve's, whose base
		// context names the group already.
		r = r.WithContext(group.With(r.Context(), &a.sessions))
	}
	for _, hook := range a.cfg.UpgradeHooks {
		if r = hook(w, r); r == nil {
			return
		}
	}
	if a.cfg.WebSocket != nil && r.Method != http.MethodGet && !handshake.IsExtendedConnect(r) {
		// No handshake (RFC 6455 §4.1): the application's handler serves
		// it, its Upgrade ignored (RFC 9110 §7.8), as it serves the same
		// request without one, not through the closure form's ServeMux.
		a.plain.ServeHTTP(w, r)
		return
	}
	a.handler.ServeHTTP(w, r)
}

// refuse answers 503 with Retry-After to an upgrade request that the
// connection limit or a shutdown turns away, and reports it.
func (a *App) refuse(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Retry-After", strconv.Itoa(int((a.cfg.RetryAfter+time.Second-1)/time.Second)))
	if errors.Is(err, group.ErrFull) {
		http.Error(w, "too many WebSocket connections; try again later", http.StatusServiceUnavailable)
		a.log.Warn("upgrade refused: connection limit reached", slog.Int("max", a.cfg.MaxConnections))
	} else {
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
	}
	if o := a.cfg.Observer; o != nil {
		o.Upgraded(r, wsconn.UpgradeResult{Status: http.StatusServiceUnavailable})
	}
}

// Shutdown sends 1001 Going Away (or Config.ShutdownCode) to every open
// WebSocket at once and waits for
// their handlers until ctx ends, then closes what remains. Run calls it;
// call it yourself when serving the App with your own http.Server, at the
// same time as that server's Shutdown (with WebSockets over HTTP/2, the
// server's Shutdown waits for their streams).
func (a *App) Shutdown(ctx context.Context) (router.ShutdownReport, error) {
	rep, err := a.sessions.Shutdown(ctx)
	return router.ShutdownReport(rep), err
}

// Run serves until ctx ends or, unless Config.NoSignals, SIGINT or SIGTERM
// arrives; then it shuts down gracefully and returns. A second signal
// during the shutdown ends the process at once, as it would without Run
// (a second Ctrl-C does not wait for ShutdownTimeout). It returns an error
// only if serving failed or the shutdown left handlers running.
func (a *App) Run(ctx context.Context) error {
	if !a.cfg.NoSignals {
		// Not signal.NotifyContext: the handling must end before the
		// shutdown begins, so that a second signal meets the runtime's
		// default (the process ends) however soon it comes.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sigs)
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-sigs:
				signal.Stop(sigs)
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	ln, err := a.listen()
	if err != nil {
		return err
	}
	return a.Serve(ctx, ln)
}

// Serve is Run on a listener the caller made: it serves on ln (wrapping it
// in TLS when configured) until ctx ends, then shuts down gracefully and
// closes ln. Signals are handled only by Run.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	tln, err := a.withTLS(ln)
	if err != nil {
		ln.Close()
		return err
	}
	ln = tln
	a.mu.Lock()
	a.addr = ln.Addr()
	a.mu.Unlock()
	if a.cfg.OnListen != nil {
		a.onListen(ln)
	}
	base := logctx.With(group.With(context.Background(), &a.sessions), a.log)
	srv := &http.Server{
		Handler:           a,
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: a.cfg.ReadHeaderTimeout,
		IdleTimeout:       a.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	a.configureHTTP2(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	a.log.Info("listening", slog.String("addr", ln.Addr().String()))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	a.log.Info("shutting down", slog.Int("connections", a.Connections()))
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()

	var wg sync.WaitGroup
	var httpErr error
	wg.Go(func() { httpErr = srv.Shutdown(sctx) })
	report, wsErr := a.Shutdown(sctx)
	wg.Wait()
	if errors.Is(httpErr, context.DeadlineExceeded) {
		// Plain requests still running at the deadline lose their
		// connections too, once the WebSockets have been closed and
		// counted (closing an HTTP/2 connection ends its WebSockets).
		_ = srv.Close()
	}
	if serveErr == nil {
		<-served
	}
	a.log.Info("stopped", slog.Int("graceful", report.Graceful), slog.Int("forced", report.Forced))
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("app: serve: %w", serveErr)
	}
	if wsErr != nil {
		return fmt.Errorf("app: shutdown: %w", wsErr)
	}
	if httpErr != nil && !errors.Is(httpErr, context.DeadlineExceeded) {
		return fmt.Errorf("app: shutdown: %w", httpErr)
	}
	return nil
}

func (a *App) listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return ln, nil
}

// onListen calls OnListen, closing ln if it panics: nothing else could.
func (a *App) onListen(ln net.Listener) {
	ok := false
	defer func() {
		if !ok {
			ln.Close()
		}
	}()
	a.cfg.OnListen(ln.Addr())
	ok = true
}

// withTLS wraps ln in TLS when the Config asks for it.
func (a *App) withTLS(ln net.Listener) (net.Listener, error) {
	tlsCfg := a.cfg.TLSConfig
	if a.cfg.CertFile != "" || a.cfg.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(a.cfg.CertFile, a.cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		if tlsCfg == nil {
			tlsCfg = &tls.Config{}
		} else {
			tlsCfg = tlsCfg.Clone()
		}
		tlsCfg.Certificates = append(tlsCfg.Certificates, cert)
	}
	if tlsCfg == nil {
		return ln, nil
	}
	return tls.NewListener(ln, a.offerHTTP2(tlsCfg)), nil
}
