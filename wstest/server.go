package wstest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// DefaultTimeout bounds what wstest waits for when no other timeout is
// given: a handshake, an expected frame, the end of a server's handlers.
const DefaultTimeout = 5 * time.Second

// memoryHost is the host of every in-memory server's URL. The .invalid
// top-level domain never resolves (RFC 2606), so a client that is not
// given the server's NetDial fails at once instead of reaching a real host.
const memoryHost = "wstest.invalid"

// Server runs an http.Handler (a router, an application's handler, or
// Handler's result) for the duration of a test, on a loopback port
// (NewServer) or entirely in memory (NewMemoryServer). Both run the handler
// under a real http.Server, so requests are parsed, middleware runs and
// Hijack works exactly as in production.
//
// The test's cleanup closes the server: the listener stops, every
// connection it accepted is closed (upgraded ones included, without a
// closing handshake), and the test waits for the handler's ServeHTTP calls
// to return. Sessions that the handler handed to goroutines of its own end
// because their transport closed. When the handler has a method
// Connections() int, as router.Router does, Close also waits until it
// reports none, within the same DefaultTimeout (a test error past it); for other
// handlers, shut them down in a cleanup registered before the Server was
// created, so that it runs after.
//
// A Server's methods are safe for concurrent use.
type Server struct {
	tb      testing.TB
	handler http.Handler
	url     string
	srv     *http.Server
	mem     *memListener // nil for a loopback server
	tcp     net.Addr     // the loopback address, nil in memory
	served  chan struct{}

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	active int           // ServeHTTP calls running
	idle   chan struct{} // closed when active drops to 0 after Close
	closed bool
}

// NewServer runs h on 127.0.0.1 with a port of the system's choosing. Its
// URL is ws://127.0.0.1:port, which any client can dial. The test's cleanup
// closes it.
func NewServer(tb testing.TB, h http.Handler) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("wstest: listen on loopback: %v", err)
	}
	s := newServer(tb, h, ln)
	s.tcp = ln.Addr()
	s.url = "ws://" + ln.Addr().String()
	s.start(ln)
	return s
}

// NewMemoryServer runs h on in-memory connections: no socket, no port,
// nothing leaves the process, and connections cost no file descriptors.
// Each direction of a connection buffers up to 1 MiB, as a loopback socket
// does. Its URL is ws://wstest.invalid, which only resolves through the
// Server's NetDial: Dial uses it by itself, and other clients are given it
// as wsclient.Options.NetDial. The test's cleanup closes it.
func NewMemoryServer(tb testing.TB, h http.Handler) *Server {
	tb.Helper()
	ln := newMemListener(memAddr(memoryHost + ":80"))
	s := newServer(tb, h, ln)
	s.mem = ln
	s.url = "ws://" + memoryHost
	s.start(ln)
	return s
}

func newServer(tb testing.TB, h http.Handler, ln net.Listener) *Server {
	s := &Server{tb: tb, handler: h, served: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !s.enter() {
				http.Error(w, "wstest: server closed", http.StatusServiceUnavailable)
				return
			}
			defer s.leave()
			h.ServeHTTP(w, r)
		}),
		ConnState:         s.track,
		ReadHeaderTimeout: DefaultTimeout,
	}
	return s
}

func (s *Server) start(ln net.Listener) {
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	s.tb.Cleanup(s.Close)
}

// enter counts a ServeHTTP call, unless the server is closed.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.active++
	return true
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// track remembers every connection the server accepted until it closes;
// hijacked ones stay, so that Close can end the sessions on them.
func (s *Server) track(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch state {
	case http.StateNew:
		if s.closed {
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
	case http.StateClosed:
		delete(s.conns, c)
	}
}

// URL returns the server's base URL, ws://host[:port] without a trailing
// slash; append a path to reach a route.
func (s *Server) URL() string { return s.url }

// NetDial connects to the server whatever addr says: over loopback TCP,
// or in memory for a server from NewMemoryServer. Its signature fits
// wsclient.Options.NetDial, which lets wsclient.Dial and wsclient.Run
// reach an in-memory server:
//
//	err := wsclient.Run(ctx, srv.URL()+"/ws", handler, &wsclient.Options{NetDial: srv.NetDial})
func (s *Server) NetDial(ctx context.Context, network, addr string) (net.Conn, error) {
	if s.mem != nil {
		return s.mem.dial(ctx)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", s.tcp.String())
}

// Dial opens a test Client to path (such as "/ws/chat?user=ann") on the
// server and fails the test if the handshake does not succeed. opts may
// set headers, subprotocols and the like; a nil NetDial becomes the
// server's and a nil Proxy means no proxy. The test client decompresses
// nothing, so opts.Config may not enable compression (test that with
// wsclient.Run and NetDial); extensions offered in opts.Extensions are
// negotiated but not applied, and frames with RSV bits then fail the
// Expect methods' checks, so read them with ReadFrame. The test's cleanup
// closes the client if the test has not.
func (s *Server) Dial(tb testing.TB, path string, opts *wsclient.Options) *Client {
	tb.Helper()
	if opts != nil && opts.Config != nil && opts.Config.Compression.Enabled {
		tb.Fatalf("wstest: dial %s: the test client does not decompress; use wsclient.Run with the server's NetDial to test compression", path)
	}
	u, resp, err := s.dial(path, opts)
	if err != nil {
		var he *wsclient.HandshakeError
		if errors.As(err, &he) && len(he.Body) > 0 {
			tb.Fatalf("wstest: dial %s: %v\nresponse body:\n%s", path, err, he.Body)
		}
		tb.Fatalf("wstest: dial %s: %v", path, err)
	}
	return newClient(tb, u, resp)
}

func (s *Server) dial(path string, opts *wsclient.Options) (wsconn.Upgraded, *http.Response, error) {
	var o wsclient.Options
	if opts != nil {
		o = *opts
	}
	if o.NetDial == nil {
		o.NetDial = s.NetDial
	}
	if o.Proxy == nil {
		o.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	return wsclient.Dial(ctx, s.url+path, &o)
}

// Close stops the server, closes every connection it accepted, waits for
// the handler's ServeHTTP calls to return (a test error if they take
// longer than DefaultTimeout) and, for a handler with a Connections
// method, for its sessions to end (a test error if they are still open
// when that DefaultTimeout is over). The test's cleanup calls it; calling it earlier
// tests what clients see when a server goes away.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()

	_ = s.srv.Close()
	<-s.served
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	clear(s.conns)
	var idle chan struct{}
	if s.active > 0 {
		s.idle = make(chan struct{})
		idle = s.idle
	}
	s.mu.Unlock()

	deadline := time.NewTimer(DefaultTimeout)
	defer deadline.Stop()
	if idle != nil {
		select {
		case <-idle:
		case <-deadline.C:
			s.tb.Errorf("wstest: handlers still running %v after the server closed their connections", DefaultTimeout)
			return
		}
	}
	if g, ok := s.handler.(interface{ Connections() int }); ok {
		// The sessions end on their own now that their transports are
		// closed; wait so that none outlives the test.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for g.Connections() > 0 {
			select {
			case <-tick.C:
			case <-deadline.C:
				s.tb.Errorf("wstest: %d sessions still open %v after the server closed their connections", g.Connections(), DefaultTimeout)
				return
			}
		}
	}
}
