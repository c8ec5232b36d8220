package app_test

// Through the app package: a forced shutdown (Run's
// ShutdownTimeout, App.Shutdown's context) closes a handshake still
// writing its 101, counts it once, and leaves no place held.

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvtGuard bounds every wait of these tests; none is a synchronization.
const rvtGuard = 15 * time.Second

// rvtBigHeader is 16 MiB of header values: a 101 that carries it cannot
// leave through a loopback socket whose peer does not read.
var rvtBigHeader = sync.OnceValue(func() http.Header {
	big := strings.Repeat("x", 64<<10)
	h := http.Header{}
	for i := range 256 {
		h.Add("X-Filler", big+string(rune('a'+i%26)))
	}
	return h
})

// rvtLogs keeps the records of a logger.
type rvtLogs struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *rvtLogs) Enabled(context.Context, slog.Level) bool { return true }
func (l *rvtLogs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *rvtLogs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *rvtLogs) WithGroup(string) slog.Handler      { return l }

// attrs returns the attributes of the first record with message msg.
func (l *rvtLogs) attrs(msg string) (map[string]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Message != msg {
			continue
		}
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.String()
			return true
		})
		return m, true
	}
	return nil, false
}

// rvtStuckRouter has a ws route whose 101 carries 16 MiB of header and an
// echo route.
func rvtStuckRouter(served chan<- struct{}) *router.Router {
	rt := router.New(router.WithConfig(wsconn.Config{Logger: quiet, WriteTimeout: time.Minute}))
	router.WS(rt, "/big", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(rvtBigHeader())
	}, func(context.Context, *wsconn.Inbound, *wsconn.Outbound, *wsconn.Session[struct{}]) error {
		served <- struct{}{}
		return nil
	})
	router.WS(rt, "/echo", nil, echo)
	return rt
}

// rvtStuckClient sends an upgrade for path to addr on a connection with a
// small receive buffer that it never reads.
func rvtStuckClient(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, rvtGuard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c
}

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

// Serve's shutdown with a stuck handshake: the handshake is forced at
// ShutdownTimeout, Serve returns nil well before the handshake timeout,
// logs "stopped graceful=0 forced=1" and the App holds no place; the
// router counts nothing of its own under the App.
func TestAppServeForcesAStuckHandshake(t *testing.T) {
	logs := &rvtLogs{}
	served := make(chan struct{}, 1)
	rt := rvtStuckRouter(served)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(rt, app.Config{
		Logger:          slog.New(logs),
		ShutdownTimeout: 300 * time.Millisecond,
		NoSignals:       true,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	addr := ln.Addr().String()

	rvtStuckClient(t, addr, "/big")
	rvtWaitFor(t, "the handshake's place", func() bool { return a.Connections() == 1 })
	if n := rt.Connections(); n != 0 {
		t.Errorf("the router counts %d connections under the App", n)
	}
	began := time.Now()
	cancel()
	err = rvtAwait(t, "Serve", done)
	took := time.Since(began)
	if err != nil {
		t.Errorf("Serve after %v: %v, want nil", took, err)
	}
	if took > 5*time.Second {
		t.Errorf("Serve took %v for a 300 ms ShutdownTimeout", took)
	}
	if n := a.Connections(); n != 0 {
		t.Errorf("%d places held after Serve returned", n)
	}
	attrs, ok := logs.attrs("stopped")
	if !ok || attrs["graceful"] != "0" || attrs["forced"] != "1" {
		t.Errorf("stopped line %v (found %v), want graceful=0 forced=1", attrs, ok)
	}
	select {
	case <-served:
		t.Error("the handler ran for a handshake cut by the shutdown")
	default:
	}
}

// App.Shutdown on an App served by an http.Server of the caller's: an
// open connection that answers the 1001 is graceful, the stuck handshake
// forced, each counted once, and the App's count goes back to 0.
func TestAppShutdownCountsOpenAndStuckOnce(t *testing.T) {
	served := make(chan struct{}, 1)
	rt := rvtStuckRouter(served)
	a := app.New(rt, app.Config{Logger: quiet})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base, stop := serveHTTP(a, ln)
	defer stop()
	addr := ln.Addr().String()

	// An open connection that reads, and so answers the 1001.
	c, err := net.DialTimeout("tcp", addr, rvtGuard)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET /echo HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("echo upgrade: %v %v (base %s)", resp, err, base)
	}
	answered := make(chan error, 1)
	go func() {
		// Read the server's CLOSE (unmasked, 2-byte header, short
		// payload) and answer it with a masked CLOSE 1001.
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(br, hdr); err != nil {
			answered <- err
			return
		}
		if hdr[0] != 0x88 {
			answered <- io.ErrUnexpectedEOF
			return
		}
		if _, err := io.ReadFull(br, make([]byte, int(hdr[1]&0x7f))); err != nil {
			answered <- err
			return
		}
		_, err := c.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9})
		answered <- err
	}()

	rvtStuckClient(t, addr, "/big")
	rvtWaitFor(t, "both places", func() bool { return a.Connections() == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rep, err := a.Shutdown(ctx)
	if err != nil || rep.Graceful != 1 || rep.Forced != 1 {
		t.Errorf("Shutdown: %+v %v, want one graceful and the handshake forced", rep, err)
	}
	if err := rvtAwait(t, "the open connection's CLOSE", answered); err != nil {
		t.Errorf("open connection: %v", err)
	}
	if n := a.Connections(); n != 0 {
		t.Errorf("%d places held after Shutdown", n)
	}
}

// The app-level face of the late hijack (see the router's
// TestShutdownClosesAHandshakeHijackedAfterTheForcedClose): a
// middleware that finishes after the decision holds the hijack past the
// forced close, and Run then reports an incomplete shutdown with a place
// still held, although a handshake is all that is left.
func TestAppRunLateHijackIsForcedToo(t *testing.T) {
	decided := make(chan struct{}, 1)
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	defer release()
	rt := router.New(router.WithConfig(wsconn.Config{Logger: quiet, WriteTimeout: time.Minute}))
	rt.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			if r.URL.Path == "/big" {
				decided <- struct{}{}
				<-gate
			}
		})
	})
	router.WS(rt, "/silent", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-ctx.Done()
		return nil
	})
	router.WS(rt, "/big", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(rvtBigHeader())
	}, echo)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(rt, app.Config{Logger: quiet,
		ShutdownTimeout: 300 * time.Millisecond, NoSignals: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	addr := ln.Addr().String()

	// A silent peer: its EOF says the forced close went through.
	s, err := net.DialTimeout("tcp", addr, rvtGuard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	req := "GET /silent HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(s, req); err != nil {
		t.Fatal(err)
	}
	sr := bufio.NewReader(s)
	if resp, err := http.ReadResponse(sr, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("silent peer: %v %v", resp, err)
	}
	forced := make(chan struct{})
	go func() {
		defer close(forced)
		_, _ = io.Copy(io.Discard, sr)
	}()

	b := rvtStuckClient(t, addr, "/big")
	rvtAwait(t, "the decision", decided)
	cancel()
	rvtAwait(t, "the forced close", forced)
	release()
	err = rvtAwait(t, "Serve", done)
	held := a.Connections()
	b.Close()
	rvtWaitFor(t, "the handshake's place", func() bool { return a.Connections() == 0 })
	if err != nil {
		t.Errorf("Serve: %v, want nil: the late handshake closed by the forced shutdown", err)
	}
	if held != 0 {
		t.Errorf("%d places held when Serve returned", held)
	}
}
