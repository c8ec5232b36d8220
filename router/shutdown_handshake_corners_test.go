package router_test

// A forced shutdown closes a handshake still writing
// its 101: the handshake's hijacked connection is a member of its group
// until the WebSocket joins. These tests attack that from outside, with raw
// TCP clients, gorilla/websocket, coder/websocket and the x/net/http2
// client.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvtGuard bounds every wait of these tests; none is a synchronization.
const rvtGuard = 15 * time.Second

// rvtBigHeader is 16 MiB of header values: a 101 that carries it cannot
// leave through a loopback socket whose peer does not read.
var rvtBigHeader = sync.OnceValue(func() http.Header { return rvtFiller(256) })

// rvtMidHeader is 5 MiB of header values: more than a loopback socket's
// send buffer may grow to here (net.ipv4.tcp_wmem's 4 MiB) and the peer's
// initial receive window hold, and quicker to read than 16 MiB.
var rvtMidHeader = sync.OnceValue(func() http.Header { return rvtFiller(80) })

// rvtFiller is n header values of 64 KiB.
func rvtFiller(n int) http.Header {
	big := strings.Repeat("x", 64<<10)
	h := http.Header{}
	for i := range n {
		h.Add("X-Filler", big+string(rune('a'+i%26)))
	}
	return h
}

// rvtServe serves h on a loopback port with an http.Server that logs
// nothing, and closes the server at the end of the test.
func rvtServe(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
	})
	return ln.Addr().String()
}

// rvtUpgrade is a raw HTTP/1.1 upgrade request for path on addr.
func rvtUpgrade(addr, path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// rvtDialRaw opens a TCP connection to addr, with a small receive buffer
// when small, and sends req on it.
func rvtDialRaw(t *testing.T, addr, req string, small bool) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, rvtGuard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if small {
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	}
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c
}

// rvtWaitFor polls cond until it holds or the guard passes.
func rvtWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(rvtGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rvtShutdownResult is what a Shutdown returned, and how long it took.
type rvtShutdownResult struct {
	rep  router.ShutdownReport
	err  error
	took time.Duration
}

func rvtShutdown(rt interface {
	Shutdown(context.Context) (router.ShutdownReport, error)
}, d time.Duration) <-chan rvtShutdownResult {
	res := make(chan rvtShutdownResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		began := time.Now()
		rep, err := rt.Shutdown(ctx)
		res <- rvtShutdownResult{rep, err, time.Since(began)}
	}()
	return res
}

func rvtAwait[V any](t *testing.T, what string, c <-chan V) V {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(rvtGuard):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// A handshake whose route decided to upgrade before the deadline but whose
// connection is hijacked only after the forced close went through (a
// middleware still finishing after the decision, a logger that blocks, a
// busy scheduler) joins the group once its members were closed: the
// forced close never reaches it. Its 101 then waits on the socket for the
// whole handshake timeout, Shutdown gives up a second later with
// ErrShutdownIncomplete, and the place stays held after Shutdown returned,
// which is what 8e848fd set out to end.
func TestShutdownClosesAHandshakeHijackedAfterTheForcedClose(t *testing.T) {
	decided := make(chan struct{}, 1)
	gate := make(chan struct{})
	served := make(chan struct{}, 1)
	rt := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: time.Minute}))
	rt.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			if r.URL.Path == "/late" {
				decided <- struct{}{}
				<-gate // the decision is made; the hijack waits
			}
		})
	})
	router.WS(rt, "/silent", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-ctx.Done()
		return nil
	})
	router.WS(rt, "/late", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(rvtBigHeader())
	}, func(context.Context, *wsconn.Inbound, *wsconn.Outbound, *wsconn.Session[struct{}]) error {
		served <- struct{}{}
		return nil
	})
	addr := rvtServe(t, rt)
	released := false
	defer func() {
		if !released {
			close(gate)
		}
	}()

	// A silent peer: it reads the server's CLOSE but never answers, so
	// only the forced close ends it, and its EOF says the forced close
	// has gone through the members.
	a := rvtDialRaw(t, addr, rvtUpgrade(addr, "/silent"), false)
	ar := bufio.NewReader(a)
	resp, err := http.ReadResponse(ar, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("silent peer: %v %v", resp, err)
	}
	forced := make(chan struct{})
	go func() {
		defer close(forced)
		_, _ = io.Copy(io.Discard, ar)
	}()

	b := rvtDialRaw(t, addr, rvtUpgrade(addr, "/late"), true)
	rvtAwait(t, "the late route's decision", decided)
	if n := rt.Connections(); n != 2 {
		t.Fatalf("%d places held, want the open connection's and the decided handshake's", n)
	}

	res := rvtShutdown(rt, 300*time.Millisecond)
	rvtAwait(t, "the forced close of the silent peer", forced)
	close(gate)
	released = true
	got := rvtAwait(t, "Shutdown", res)
	held := rt.Connections()
	b.Close() // lets the handshake fail, so that nothing outlives the test
	rvtWaitFor(t, "the handshake's place", func() bool { return rt.Connections() == 0 })

	if got.err != nil {
		t.Errorf("Shutdown after %v: %v (report %+v), want the late handshake closed too", got.took, got.err, got.rep)
	}
	if held != 0 {
		t.Errorf("%d places still held when Shutdown returned", held)
	}
	if got.rep.Graceful+got.rep.Forced != 2 || got.rep.Forced != 2 {
		t.Errorf("report %+v, want both forced", got.rep)
	}
	select {
	case <-served:
		t.Error("the handler ran for a handshake cut by the shutdown")
	default:
	}
}

// The 101 finishes around the deadline: just before it (the WebSocket
// joins and answers the 1001), while the forced close runs (the member
// still writing, or both members at once), or just after. Whatever the
// order, one connection is counted once, Shutdown completes, and no place
// is left. The client (gorilla, on a connection of ours whose reads wait
// for a gate) takes a while to read 5 MiB of header; a first round
// measures that, and the rounds open the gate at points spread around the
// deadline minus it.
func TestShutdownCountsAHandshakeFinishingAtTheDeadlineOnce(t *testing.T) {
	read, _ := rvtDeadlineRound(t, -1, 0, 0)
	deadline := 2*read + 100*time.Millisecond
	t.Logf("reading the 101 takes %v; deadline %v", read, deadline)
	var graceful, forced int
	for i, k := range []float64{1.25, 1.0, 0.9, 0.75, 0.5, 0.25, -0.1} {
		open := deadline - time.Duration(k*float64(read))
		_, rep := rvtDeadlineRound(t, i, deadline, open)
		graceful += rep.Graceful
		forced += rep.Forced
	}
	t.Logf("graceful %d, forced %d over the rounds", graceful, forced)
}

// rvtDeadlineRound serves one stuck handshake on a router of its own. With
// deadline 0 it opens the gate at once and returns how long the client
// took to read the 101; otherwise it shuts the router down with deadline,
// opens the gate at open after the shutdown began, and checks the report.
func rvtDeadlineRound(t *testing.T, round int, deadline, open time.Duration) (time.Duration, router.ShutdownReport) {
	t.Helper()
	rt := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: time.Minute}))
	router.WS(rt, "/ws", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(rvtMidHeader())
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		return in.Err()
	})
	addr := rvtServe(t, rt)
	nc, err := net.DialTimeout("tcp", addr, rvtGuard)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	gate := make(chan struct{})
	var once sync.Once
	openGate := func() { once.Do(func() { close(gate) }) }
	defer openGate()
	upgraded := make(chan time.Time, 1)
	client := make(chan error, 1)
	go func() {
		// gorilla speaks the client side: it reads the 101 once the gate
		// opens, then answers the server's CLOSE.
		//lint:ignore SA1019 the handshake over a connection of ours
		c, _, err := gorilla.NewClient(&rvtGatedConn{Conn: nc, gate: gate}, rvtURL(t, "ws://"+addr+"/ws"), nil, 4096, 4096)
		upgraded <- time.Now()
		if err != nil {
			client <- err
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				client <- err
				return
			}
		}
	}()
	rvtWaitFor(t, "the decision's place", func() bool { return rt.Connections() == 1 })

	if deadline == 0 {
		began := time.Now()
		openGate()
		took := rvtAwait(t, "the calibration's 101", upgraded).Sub(began)
		got := rvtAwait(t, "Shutdown", rvtShutdown(rt, rvtGuard))
		if got.err != nil || got.rep.Graceful != 1 {
			t.Fatalf("calibration: Shutdown %+v %v", got.rep, got.err)
		}
		return took, got.rep
	}
	res := rvtShutdown(rt, deadline)
	timer := time.AfterFunc(open, openGate)
	defer timer.Stop()
	got := rvtAwait(t, "Shutdown", res)
	held := rt.Connections()
	cerr := rvtAwait(t, "the client's end", client)
	where := fmt.Sprintf("round %d (gate at %v of a %v deadline)", round, open, deadline)
	if got.err != nil {
		t.Errorf("%s: Shutdown: %v (report %+v)", where, got.err, got.rep)
	}
	if got.rep.Graceful+got.rep.Forced != 1 {
		t.Errorf("%s: report %+v counts one handshake %d times", where, got.rep, got.rep.Graceful+got.rep.Forced)
	}
	if held != 0 {
		t.Errorf("%s: %d places held after Shutdown returned", where, held)
	}
	if got.rep.Graceful == 1 {
		var ce *gorilla.CloseError
		if !errors.As(cerr, &ce) || ce.Code != gorilla.CloseGoingAway {
			t.Errorf("%s: counted graceful, but the client ended with %v", where, cerr)
		}
	}
	return 0, got.rep
}

// rvtGatedConn is a client connection whose reads wait for gate.
type rvtGatedConn struct {
	net.Conn
	gate chan struct{}
}

func (c *rvtGatedConn) Read(p []byte) (int, error) {
	<-c.gate
	return c.Conn.Read(p)
}

// unwrapless is a user's ResponseWriter wrapper with no Unwrap: only the
// Hijacker it passes on by hand lets the upgrade through.
type unwrapless struct {
	http.ResponseWriter
	hijacked *bool
}

func (w unwrapless) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	*w.hijacked = true
	return w.ResponseWriter.(http.Hijacker).Hijack()
}

// unwrapping is a user's wrapper that offers Unwrap and nothing else.
type unwrapping struct{ http.ResponseWriter }

func (w unwrapping) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// opaque hides everything but the three methods of http.ResponseWriter.
type opaque struct{ http.ResponseWriter }

// A router served behind a wrapper of the ResponseWriter (middleware.Log
// outside the router, a wrapper with Unwrap, one with only Hijack) still
// upgrades, the connection counts and gives its place back, and a stuck
// handshake behind the wrapper is still closed by a forced shutdown. A
// wrapper that hides Hijack gets a 500 and holds no place.
func TestShutdownWrappedWritersStillUpgrade(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(http.Handler) http.Handler
		ok   bool
	}{
		{"Log outside", middleware.Log(slog.New(slog.DiscardHandler)), true},
		{"Unwrap only", func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(unwrapping{w}, r) })
		}, true},
		{"Hijack without Unwrap", func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var hj bool
				h.ServeHTTP(unwrapless{w, &hj}, r)
			})
		}, true},
		{"opaque", func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(opaque{w}, r) })
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: time.Minute}))
			router.WS(rt, "/echo", nil, echo[struct{}])
			router.WS(rt, "/big", func(*http.Request) (struct{}, router.Decision) {
				return struct{}{}, router.Upgrade(rvtBigHeader())
			}, echo[struct{}])
			addr := rvtServe(t, tc.wrap(rt))

			ctx, cancel := context.WithTimeout(context.Background(), rvtGuard)
			defer cancel()
			c, resp, err := coder.Dial(ctx, "ws://"+addr+"/echo", nil)
			if !tc.ok {
				if err == nil {
					c.CloseNow()
					t.Fatal("upgraded through a writer that cannot hijack")
				}
				if resp == nil || resp.StatusCode != http.StatusInternalServerError {
					t.Fatalf("got %v %v, want 500", resp, err)
				}
				rvtWaitFor(t, "the refused handshake's place", func() bool { return rt.Connections() == 0 })
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Write(ctx, coder.MessageText, []byte("hi")); err != nil {
				t.Fatal(err)
			}
			if _, p, err := c.Read(ctx); err != nil || string(p) != "hi" {
				t.Fatalf("echo %q %v", p, err)
			}
			if n := rt.Connections(); n != 1 {
				t.Errorf("%d connections, want 1", n)
			}

			// And a handshake stuck behind the wrapper is reached.
			rvtDialRaw(t, addr, rvtUpgrade(addr, "/big"), true)
			rvtWaitFor(t, "the stuck handshake's place", func() bool { return rt.Connections() == 2 })
			// The echo connection answers the 1001 (coder reads it).
			readErr := make(chan error, 1)
			go func() {
				_, _, err := c.Read(ctx)
				readErr <- err
			}()
			got := rvtAwait(t, "Shutdown", rvtShutdown(rt, 300*time.Millisecond))
			if got.err != nil || got.rep.Forced != 1 || got.rep.Graceful != 1 {
				t.Errorf("Shutdown after %v: %+v %v, want the echo graceful and the handshake forced", got.took, got.rep, got.err)
			}
			if n := rt.Connections(); n != 0 {
				t.Errorf("%d places held after Shutdown", n)
			}
			if err := rvtAwait(t, "the echo client's end", readErr); coder.CloseStatus(err) != coder.StatusGoingAway {
				t.Errorf("echo client ended with %v, want 1001", err)
			}
		})
	}
}

// The change wraps only HTTP/1.1's writer: an HTTP/2 WebSocket still
// upgrades, counts, answers the 1001 and is counted graceful, and the
// place goes back.
func TestShutdownHTTP2Unaffected(t *testing.T) {
	rt := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: time.Minute}))
	router.WS(rt, "/echo", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(http.Header{"X-Decided": {"yes"}})
	}, echo[struct{}])
	h := h2pServe(t, rt, nil)
	s, resp := h2pDial(t, h, "/echo")
	defer s.CloseNow()
	if resp.ProtoMajor != 2 || resp.Header.Get("X-Decided") != "yes" {
		t.Fatalf("proto %d, X-Decided %q", resp.ProtoMajor, resp.Header.Get("X-Decided"))
	}
	h2pEcho(t, s, "over h2")
	if n := rt.Connections(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	res := rvtShutdown(rt, 5*time.Second)
	_, _, err := s.ReadMessage() // answers the 1001
	if err == nil || !strings.Contains(err.Error(), "1001") {
		t.Errorf("client got %v, want the 1001", err)
	}
	got := rvtAwait(t, "Shutdown", res)
	if got.err != nil || got.rep.Graceful != 1 || got.rep.Forced != 0 {
		t.Errorf("Shutdown: %+v %v, want one graceful", got.rep, got.err)
	}
	if n := rt.Connections(); n != 0 {
		t.Errorf("%d places held after Shutdown", n)
	}
}

func rvtURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
