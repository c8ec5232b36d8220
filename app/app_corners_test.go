package app_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// cornerRaw sends one raw HTTP/1.1 request on a new connection to addr
// and returns the response with its body read.
func cornerRaw(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, ""
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// cornerUpgradeReq is a raw upgrade request for path on host.
func cornerUpgradeReq(host, path string) string {
	var key [16]byte
	_, _ = rand.Read(key[:])
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", path, host, base64.StdEncoding.EncodeToString(key[:]))
}

// The closure form: "Requests it declines, and requests that are not
// upgrades, go to the handler". Without Config.WebSocket the handler sees
// each of these plain requests as sent; with it, they must still reach
// the handler, not a redirect or a 404 made by the closure form's own
// routing.
func TestAppCornerClosureFormPlainRequestsReachHandler(t *testing.T) {
	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "plain "+r.Method+" "+r.URL.String())
	})
	closure := router.Everywhere[struct{}](nil, echo, router.WithConfig(wsconn.Config{Logger: quiet}))
	_, without, _ := start(t, plain, app.Config{})
	_, with, _ := start(t, plain, app.Config{WebSocket: closure})
	for _, tc := range []struct{ req, want string }{
		{"GET /a//b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "plain GET /a//b"},
		{"GET /a/../b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "plain GET /a/../b"},
		{"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "plain CONNECT //example.com:443"},
	} {
		line := tc.req[:strings.Index(tc.req, "\r")]
		if resp, body := cornerRaw(t, hostOf(without), tc.req); resp.StatusCode != 200 || body != tc.want {
			t.Fatalf("%s without the closure form: %d %q", line, resp.StatusCode, body)
		}
		if resp, body := cornerRaw(t, hostOf(with), tc.req); resp.StatusCode != 200 || body != tc.want {
			t.Errorf("%s with the closure form: %d (Location %q) %q, want 200 %q", line, resp.StatusCode, resp.Header.Get("Location"), body, tc.want)
		}
	}
}

// The closure form is "one decision and one handler for every upgrade
// request, whatever its path": an upgrade to /a//b must reach the
// decision and be upgraded, not be answered 301.
func TestAppCornerClosureFormUpgradeUncleanPath(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	decide := func(r *http.Request) (struct{}, router.Decision) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		return struct{}{}, router.Upgrade(nil)
	}
	closure := router.Everywhere(decide, echo, router.WithConfig(wsconn.Config{Logger: quiet}))
	_, base, _ := start(t, nil, app.Config{WebSocket: closure})
	host := hostOf(base)
	resp, body := cornerRaw(t, host, cornerUpgradeReq(host, "/a//b"))
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade to /a//b: %d (Location %q) %q, want 101; the decision saw %q",
			resp.StatusCode, resp.Header.Get("Location"), body, seen)
	}
}

// Config.HTTP2 "offers HTTP/2 to TLS clients (ALPN "h2") besides
// HTTP/1.1, so that a browser's page, its requests and its WebSockets
// share one connection". A TLSConfig made for another server may list
// "http/1.1" before "h2"; Go's TLS server picks by its own order, so a
// client offering both (every browser, net/http) must still get h2.
func TestAppCornerHTTP2WinsOverHTTP1ListedFirst(t *testing.T) {
	cert, pool := h2test.Certificate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(newRouter(), app.Config{Logger: quiet, NoSignals: true, HTTP2: true,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1", "h2"}}})
	serveApp(t, a, ln)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q with a client offering h2 and http/1.1, want h2", p)
	}
}

// A keep-alive connection that served a plain request and then carries an
// upgrade: the WebSocket outlives ReadHeaderTimeout and IdleTimeout, which
// bound that connection while it was plain HTTP.
func TestAppCornerUpgradeOnKeepAliveConnectionOutlivesServerTimeouts(t *testing.T) {
	const short = 250 * time.Millisecond
	_, base, _ := start(t, newRouter(), app.Config{ReadHeaderTimeout: short, IdleTimeout: short})
	host := hostOf(base)
	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(nc)
	io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "ok" || resp.Close {
		t.Fatalf("plain request: %d %q close=%v", resp.StatusCode, b, resp.Close)
	}
	time.Sleep(short / 2) // idle, within IdleTimeout
	io.WriteString(nc, cornerUpgradeReq(host, "/echo"))
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade on the kept-alive connection: %v %v", resp, err)
	}
	c := &soakConn{nc: nc, br: br}
	time.Sleep(3 * short)
	if err := c.send(1, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	got, err := c.next()
	if err != nil || string(got.payload) != "still here" {
		t.Fatalf("echo after %v: %+v %v", 3*short, got, err)
	}
}

// Serve after Shutdown: the App keeps refusing upgrades with the shutdown
// 503 (the body and Retry-After of routing.md), serves plain requests,
// and Serve still returns nil and closes its listener when its context
// ends.
func TestAppCornerServeAfterShutdown(t *testing.T) {
	a := app.New(newRouter(), app.Config{Logger: quiet, NoSignals: true, RetryAfter: 2500 * time.Millisecond})
	if rep, err := a.Shutdown(context.Background()); err != nil || rep.Graceful != 0 || rep.Forced != 0 {
		t.Fatalf("Shutdown with nothing open: %+v %v", rep, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base, stop := serveApp(t, a, ln)
	host := hostOf(base)
	resp, body := cornerRaw(t, host, cornerUpgradeReq(host, "/echo"))
	if resp.StatusCode != http.StatusServiceUnavailable || body != "server is shutting down\n" || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("upgrade: %d %q Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if resp, body := cornerRaw(t, host, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("plain: %d %q", resp.StatusCode, body)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("listener after Serve: %v", err)
	}
	if a.Connections() != 0 {
		t.Fatalf("Connections() = %d", a.Connections())
	}
}

// Shutdown called twice at once, then once more: every socket gets one
// 1001, both calls return without error and report no forced connection,
// the later call reports nothing open, and the count is back to zero.
func TestAppCornerShutdownConcurrentCalls(t *testing.T) {
	a, base, _ := start(t, newRouter(), app.Config{})
	var conns []*gorilla.Conn
	for range 3 {
		c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	advWaitConns(t, a, 3)
	type result struct {
		rep router.ShutdownReport
		err error
	}
	results := make(chan result, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for range 2 {
		go func() {
			rep, err := a.Shutdown(ctx)
			results <- result{rep, err}
		}()
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
			t.Fatalf("socket %d: %v, want 1001", i, err)
		}
	}
	for range 2 {
		r := advWait(t, results, "a Shutdown")
		if r.err != nil || r.rep.Forced != 0 || r.rep.Graceful > 3 {
			t.Fatalf("Shutdown: %+v %v", r.rep, r.err)
		}
	}
	if rep, err := a.Shutdown(ctx); err != nil || rep != (router.ShutdownReport{}) {
		t.Fatalf("third Shutdown: %+v %v, want an empty report", rep, err)
	}
	if n := a.Connections(); n != 0 {
		t.Fatalf("Connections() = %d", n)
	}
}

// routing.md, Connection limit: "A connection counts from its handshake".
// A client that sends an upgrade request and then reads nothing holds its
// place while the 101 waits on the socket (an upgrade beyond
// MaxConnections gets the documented 503), and the route's WriteTimeout,
// which bounds the 101, gives the place back and closes that connection.
func TestAppCornerStalledHandshakeHoldsPlaceUntilWriteTimeout(t *testing.T) {
	const hsTimeout = 300 * time.Millisecond
	pad := strings.Repeat("p", 4<<20) // a 101 too large for the socket buffers
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet, WriteTimeout: hsTimeout}))
	router.WS(r, "/big", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(http.Header{"X-Pad": {pad}})
	}, echo)
	router.WS(r, "/echo", nil, echo)
	a := app.New(r, app.Config{Logger: quiet, NoSignals: true, MaxConnections: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base, _ := serveApp(t, a, smallSendBuffers{ln})
	host := hostOf(base)
	d := net.Dialer{Control: socketBuffer(4 << 10)}
	nc, err := d.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, cornerUpgradeReq(host, "/big")); err != nil {
		t.Fatal(err)
	}
	advWaitConns(t, a, 1)
	began := time.Now()
	resp, body := cornerRaw(t, host, cornerUpgradeReq(host, "/echo"))
	if resp.StatusCode != http.StatusServiceUnavailable || body != "too many WebSocket connections; try again later\n" || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("upgrade while a handshake holds the only place: %d %q Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	advWaitConns(t, a, 0)
	if el := time.Since(began); el > hsTimeout+2*time.Second {
		t.Fatalf("the stalled handshake held its place %v, WriteTimeout is %v", el, hsTimeout)
	}
	// The stalled connection is closed: reading it ends (after what the
	// server managed to send).
	_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.Copy(io.Discard, nc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the stalled connection: %v, want it closed", err)
	}
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err != nil {
		t.Fatalf("upgrade once the place came back: %v", err)
	}
	c.Close()
}

// closing.md, Shutdown, over HTTP/2: a plain request in flight on the
// connection finishes with its whole answer while a WebSocket stream on
// the same connection gets the configured ShutdownCode, and Serve returns
// nil with a graceful report.
func TestAppCornerHTTP2PlainRequestInFlightFinishesAtShutdown(t *testing.T) {
	r := newRouter()
	started, release := make(chan struct{}), make(chan struct{})
	r.HandleFunc("GET /slow", func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})
	a, base, client, _, logs, stop := tlsApp(t, r, app.Config{HTTP2: true, ShutdownCode: 1012, ShutdownTimeout: 3 * time.Second})
	s, _, err := client.Dial(context.Background(), base+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	type answer struct {
		status int
		proto  int
		body   string
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := client.HTTP.Get(base + "/slow")
		if err != nil {
			got <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{resp.StatusCode, resp.ProtoMajor, string(b), err}
	}()
	advWait(t, started, "the slow request")
	advWaitConns(t, a, 1)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	_, _, err = s.ReadMessage()
	if ce, ok := errors.AsType[*h2test.CloseError](err); !ok || ce.Code != 1012 {
		t.Fatalf("the stream at shutdown: %v, want CLOSE 1012", err)
	}
	close(release)
	if ans := advWait(t, got, "the slow answer"); ans.err != nil || ans.status != 200 || ans.proto != 2 || ans.body != "done" {
		t.Fatalf("the request in flight: %+v, want 200 \"done\" over HTTP/2", ans)
	}
	if err := advWait(t, stopped, "Serve"); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if !strings.Contains(logs.String(), "graceful=1 forced=0") {
		t.Fatalf("want graceful=1 forced=0; log:\n%s", logs.String())
	}
}

// MaxConnections and Connections after failures of every kind, over
// HTTP/1.1 and HTTP/2: peers that vanish without a CLOSE (their TCP
// connection closed), handlers that panic, refused handshakes, a client
// that hangs up right after sending its upgrade request. The count goes
// back to zero and the cap admits as many sockets as before.
func TestAppCornerPlacesComeBackAfterMixedFailures(t *testing.T) {
	const max = 2
	// Every upgrade request is reported once it ended: the test waits for
	// that before it counts places, lest a request still on its way (the
	// client that hangs up) claim one after the count.
	upgrades := &upgradeCounter{}
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}), router.WithObserver(upgrades))
	router.WS(r, "/echo", nil, echo)
	router.WS(r, "/panic", nil, func(context.Context, *wsconn.Inbound, *wsconn.Outbound, *wsconn.Session[struct{}]) error {
		panic("boom")
	})
	a, base, client, _, _, _ := tlsApp(t, r, app.Config{HTTP2: true, MaxConnections: max})
	var mu sync.Mutex
	var h2conns []net.Conn
	//lint:ignore SA1019 x/net/http2.Transport is the Go client that sends extended CONNECT; h2test uses it too
	client.Transport.DialTLSContext = func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
		d := tls.Dialer{Config: cfg}
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			mu.Lock()
			h2conns = append(h2conns, c)
			mu.Unlock()
		}
		return c, err
	}
	host := strings.TrimPrefix(base, "https://")
	wss := "wss://" + host
	d := gorilla.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: 3 * time.Second}

	for round := range 2 {
		// What the last round left (a panicked stream's closing
		// handshake, under load) is given back before the limit counts.
		advWaitConns(t, a, 0)
		// HTTP/1.1 peer that vanishes.
		c, _, err := d.Dial(wss+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		// HTTP/2 peer that vanishes: its whole TCP connection goes.
		s, _, err := client.Dial(context.Background(), base+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		advWaitConns(t, a, 2)
		c.NetConn().Close()
		mu.Lock()
		for _, nc := range h2conns {
			nc.Close()
		}
		h2conns = nil
		mu.Unlock()
		s.CloseNow()
		advWaitConns(t, a, 0)

		// Handlers that panic: 1011 on both protocols.
		c, _, err = d.Dial(wss+"/panic", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseInternalServerErr) {
			t.Fatalf("round %d: HTTP/1.1 panic: %v, want 1011", round, err)
		}
		c.Close()
		s, _, err = client.Dial(context.Background(), base+"/panic", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.ReadMessage(); err == nil {
			t.Fatalf("round %d: HTTP/2 panic: a message", round)
		} else if ce, ok := errors.AsType[*h2test.CloseError](err); !ok || ce.Code != 1011 {
			t.Fatalf("round %d: HTTP/2 panic: %v, want 1011", round, err)
		}
		s.CloseNow()

		// Refused handshakes.
		if _, resp, err := d.Dial(wss+"/echo", http.Header{"Sec-WebSocket-Version": {"12"}}); err == nil || resp == nil || resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("round %d: HTTP/1.1 version 12: %v", round, err)
		}
		if _, resp, err := client.Dial(context.Background(), base+"/echo", http.Header{"Sec-WebSocket-Version": {"12"}}); err == nil || resp == nil || resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("round %d: HTTP/2 version 12: %v", round, err)
		}
		// A client that hangs up right after its upgrade request.
		raw, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(raw, cornerUpgradeReq(host, "/echo"))
		raw.Close()

		// Seven upgrade requests a round.
		deadline := time.Now().Add(5 * time.Second)
		for upgrades.n.Load() < int64(7*(round+1)) && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		advWaitConns(t, a, 0)
	}
	// The cap admits max sockets again, and no more.
	c, _, err := d.Dial(wss+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _, err := client.Dial(context.Background(), base+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	if _, resp, err := d.Dial(wss+"/echo", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("beyond the cap: %v, want 503", err)
	}
	if n := a.Connections(); n != max {
		t.Fatalf("Connections() = %d, want %d", n, max)
	}
}

// Run's errors: one that cannot listen returns at once with an error
// naming the cause; one whose shutdown leaves a handler running returns an
// error wrapping router.ErrShutdownIncomplete after ShutdownTimeout and
// the second of grace, and leaves no goroutine of its own behind.
func TestAppCornerRunErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	a := app.New(nil, app.Config{Addr: busy.Addr().String(), Logger: quiet, NoSignals: true})
	err = a.Run(context.Background())
	if _, ok := errors.AsType[*net.OpError](err); !ok || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Run on a busy address: %v, want a *net.OpError for EADDRINUSE", err)
	}
	if a.Addr() != nil {
		t.Fatalf("Addr() = %v after a failed listen", a.Addr())
	}

	leaks := advLeakCheck(t)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	stuck := make(chan struct{})
	router.WS(r, "/stuck", nil, func(context.Context, *wsconn.Inbound, *wsconn.Outbound, *wsconn.Session[struct{}]) error {
		<-stuck
		return nil
	})
	const timeout = 200 * time.Millisecond
	a, base, stop := start(t, r, app.Config{ShutdownTimeout: timeout})
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/stuck"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	advWaitConns(t, a, 1)
	began := time.Now()
	err = stop()
	el := time.Since(began)
	if !errors.Is(err, router.ErrShutdownIncomplete) {
		t.Fatalf("Run: %v, want an error wrapping ErrShutdownIncomplete", err)
	}
	if el < timeout+time.Second-100*time.Millisecond || el > timeout+3*time.Second {
		t.Errorf("Run returned after %v, want about ShutdownTimeout and a second", el)
	}
	close(stuck)
	advWaitConns(t, a, 0)
	c.Close()
	leaks()
}

// Config.HTTP2 "Default false: TLS clients get HTTP/1.1". A TLSConfig that
// hands out per-client configurations (GetConfigForClient, for SNI) may
// list "h2" in them; with HTTP2 off the App must still not speak HTTP/2.
func TestAppCornerHTTP2OffWithGetConfigForClient(t *testing.T) {
	cert, pool := h2test.Certificate(t)
	inner := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(newRouter(), app.Config{Logger: quiet, NoSignals: true,
		TLSConfig: &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return inner, nil }}})
	serveApp(t, a, ln)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p == "h2" {
		t.Errorf("negotiated %q with HTTP2 off, want HTTP/1.1", p)
	}
	client := h2test.NewClient(pool)
	defer client.Close()
	if resp, err := client.HTTP.Get("https://" + ln.Addr().String() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("an HTTP/2-only client was served (%s %d) with HTTP2 off", resp.Proto, resp.StatusCode)
	}
}

// IdleTimeout is for HTTP keep-alive connections: an HTTP/2 connection
// that carries only a WebSocket stream is not idle, and the socket outlives
// a short IdleTimeout.
func TestAppCornerHTTP2WebSocketOutlivesIdleTimeout(t *testing.T) {
	const short = 200 * time.Millisecond
	a, base, client, _, _, _ := tlsApp(t, newRouter(), app.Config{HTTP2: true, IdleTimeout: short, ReadHeaderTimeout: short})
	s, _, err := client.Dial(context.Background(), base+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	time.Sleep(4 * short)
	if err := s.WriteText("after idle"); err != nil {
		t.Fatal(err)
	}
	if _, p, err := s.ReadMessage(); err != nil || string(p) != "after idle" {
		t.Fatalf("echo after %v: %q %v", 4*short, p, err)
	}
	if n := a.Connections(); n != 1 {
		t.Fatalf("Connections() = %d", n)
	}
}

// ReadHeaderTimeout stops clients that send their request a byte at a
// time; with TLS, a client that connects and never finishes its TLS
// handshake is cut off as soon.
func TestAppCornerReadHeaderTimeoutBoundsTLSHandshake(t *testing.T) {
	const short = 300 * time.Millisecond
	_, base, _, _, _, _ := tlsApp(t, newRouter(), app.Config{ReadHeaderTimeout: short})
	nc, err := net.Dial("tcp", strings.TrimPrefix(base, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	began := time.Now()
	_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = io.Copy(io.Discard, nc)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("a silent TLS client was not cut off")
	}
	if el := time.Since(began); el < short-50*time.Millisecond || el > short+2*time.Second {
		t.Fatalf("cut off after %v, want about %v", el, short)
	}
}

// failingListener accepts until fail is closed, then fails for good.
type failingListener struct {
	net.Listener
	fail chan struct{}
}

var errAcceptBroke = errors.New("accept broke")

func (l *failingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	select {
	case <-l.fail:
		if err == nil {
			c.Close()
		}
		return nil, errAcceptBroke
	default:
	}
	return c, err
}

// Run "returns an error only if serving failed": when the listener fails
// for good, Serve shuts down gracefully (1001 to the open WebSocket) and
// returns an error wrapping the listener's, without waiting for its
// context.
func TestAppCornerServeReturnsListenerFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: ln, fail: make(chan struct{})}
	a := app.New(newRouter(), app.Config{Logger: quiet, NoSignals: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, fl) }()
	c, _, err := gorilla.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	close(fl.fail)
	if nc, err := net.Dial("tcp", ln.Addr().String()); err == nil { // wakes Accept
		nc.Close()
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Fatalf("the socket: %v, want 1001", err)
	}
	if err := advWait(t, done, "Serve"); !errors.Is(err, errAcceptBroke) {
		t.Fatalf("Serve: %v, want an error wrapping the listener's", err)
	}
	if n := a.Connections(); n != 0 {
		t.Fatalf("Connections() = %d", n)
	}
}

// upgradeCounter is an Observer that counts the upgrade requests reported.
type upgradeCounter struct {
	wsconn.NopObserver
	n atomic.Int64
}

func (u *upgradeCounter) Upgraded(*http.Request, wsconn.UpgradeResult) { u.n.Add(1) }
