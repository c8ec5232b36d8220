package app_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// socketBuffer returns a dialer Control function that sets the socket's
// receive buffer to n bytes before it connects, so that a client that
// stops reading makes the server's writes wait sooner.
func socketBuffer(n int) func(string, string, syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		})
		return errors.Join(err, serr)
	}
}

// smallSendBuffers makes the server's accepted sockets buffer little of
// what they send.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// upgradeRaw opens a WebSocket to path on addr by hand and returns the
// socket after the 101, with a reader that may hold the first frames.
func upgradeRaw(t testing.TB, d *net.Dialer, addr, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", path, addr, base64.StdEncoding.EncodeToString(key[:]))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade %s: %d", path, resp.StatusCode)
	}
	return nc, br
}

func hostOf(base string) string { return strings.TrimPrefix(base, "http://") }

// A client that sends its request headers a byte at a time (slowloris) is
// cut off at Config.ReadHeaderTimeout, before any handler runs.
func TestSlowHeadersCutOffAtReadHeaderTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ran := make(chan struct{}, 1)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/echo", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		ran <- struct{}{}
		return nil
	})
	_, base, _ := start(t, r, app.Config{ReadHeaderTimeout: timeout})
	nc, err := net.Dial("tcp", hostOf(base))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	begin := time.Now()
	request := "GET /echo HTTP/1.1\r\nHost: " + hostOf(base) + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	go func() {
		for i := range len(request) {
			if _, err := nc.Write([]byte{request[i]}); err != nil {
				return // cut off
			}
			time.Sleep(20 * time.Millisecond) // the whole request would take about 3 s
		}
	}()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var answer strings.Builder
	_, err = io.Copy(&answer, nc)
	took := time.Since(begin)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("the server kept the slow client for %v", took)
	}
	// net/http hangs up, after a 400 when the deadline fell inside a line.
	if a := answer.String(); a != "" && !strings.HasPrefix(a, "HTTP/1.1 400 ") {
		t.Fatalf("the server answered %q to incomplete headers", a)
	}
	if took < timeout-50*time.Millisecond || took > timeout+time.Second {
		t.Fatalf("cut off after %v, want about %v", took, timeout)
	}
	select {
	case <-ran:
		t.Fatal("the handler ran for a request that never completed")
	default:
	}
}

// Request headers beyond net/http's MaxHeaderBytes (1 MiB) get 431.
func TestOversizedHeadersGet431(t *testing.T) {
	_, base, _ := start(t, newRouter(), app.Config{})
	nc, err := net.Dial("tcp", hostOf(base))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	go func() {
		fmt.Fprintf(nc, "GET /echo HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Padding: %s\r\n\r\n",
			hostOf(base), strings.Repeat("a", 2<<20))
	}()
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

// Requests that are not HTTP at all get 400 from net/http before any
// colibri code runs.
func TestMalformedRequestsGet400(t *testing.T) {
	_, base, _ := start(t, newRouter(), app.Config{})
	for name, request := range map[string]string{
		"garbage request line":  "HELLO\r\n\r\n",
		"header without colon":  "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade websocket\r\n\r\n",
		"TLS hello on plain":    "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
		"invalid header value":  "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: web\x00socket\r\n\r\n",
		"two Host headers":      "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.1 without Host": "GET /echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			nc, err := net.Dial("tcp", hostOf(base))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := io.WriteString(nc, request); err != nil {
				t.Fatal(err)
			}
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
		})
	}
}

// A peer that stops reading while its handler writes megabytes is
// disconnected once a write has waited Config.WriteTimeout: the handler's
// write fails with ErrWriteTimeout, the connection ends soon after, and
// its goroutines and buffers are gone.
func TestWriteTimeoutDisconnectsPeerThatStopsReading(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	type outcome struct {
		err       error
		lastWrite time.Time // when the last successful write returned
		failed    time.Time
	}
	result := make(chan outcome, 1)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet, WriteTimeout: writeTimeout}))
	router.WS(r, "/firehose", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		chunk := make([]byte, 1<<20)
		o := outcome{lastWrite: time.Now()}
		for {
			if err := out.WriteBinary(ctx, chunk); err != nil {
				o.err, o.failed = err, time.Now()
				result <- o
				return err
			}
			o.lastWrite = time.Now()
		}
	})

	addr := make(chan net.Addr, 1)
	a := app.New(r, app.Config{Logger: quiet, NoSignals: true, OnListen: func(x net.Addr) { addr <- x }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, smallSendBuffers{ln}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	host := (<-addr).String()

	runtime.GC()
	goroutines := runtime.NumGoroutine()
	var heapBefore runtime.MemStats
	runtime.ReadMemStats(&heapBefore)

	nc, _ := upgradeRaw(t, &net.Dialer{Control: socketBuffer(4 << 10)}, host, "/firehose")
	var o outcome
	select {
	case o = <-result:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler is still writing to a peer that does not read")
	}
	if !errors.Is(o.err, wsconn.ErrWriteTimeout) || !errors.Is(o.err, wsconn.ErrClosed) {
		t.Fatalf("write error %v, want one matching ErrWriteTimeout and ErrClosed", o.err)
	}
	if waited := o.failed.Sub(o.lastWrite); waited < writeTimeout-50*time.Millisecond || waited > writeTimeout+time.Second {
		t.Fatalf("the failing write waited %v, want about %v", waited, writeTimeout)
	}
	// The connection ends at once: nobody waits for a CLOSE that could not
	// be sent.
	deadline := o.failed.Add(time.Second)
	for a.Connections() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connection(s) still open %v after the write failed", a.Connections(), time.Since(o.failed))
		}
		time.Sleep(5 * time.Millisecond)
	}
	nc.Close()
	for runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline.Add(2 * time.Second)) {
			t.Fatalf("%d goroutine(s) left after the connection ended", runtime.NumGoroutine()-goroutines)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The handler's 1 MiB chunk and the connection's buffers are garbage.
	var heapAfter runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heapAfter)
	if grew := int64(heapAfter.HeapAlloc) - int64(heapBefore.HeapAlloc); grew > 1<<20 {
		t.Fatalf("the heap kept %d bytes after the connection ended", grew)
	}
}

// UpgradeRateLimit in front of the router: upgrades from one client
// beyond the burst get 429 with Retry-After; plain requests pass.
func TestUpgradeRateLimitThroughApp(t *testing.T) {
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	r.Use(middleware.UpgradeRateLimit(0.5, 3))
	r.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	router.WS(r, "/echo", nil, echo)
	_, base, _ := start(t, r, app.Config{})
	for i := range 3 {
		c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
		if err != nil {
			t.Fatalf("upgrade %d within the burst: %v", i, err)
		}
		c.Close()
	}
	_, resp, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("upgrade beyond the burst: %v %v, want 429", err, resp)
	}
	if s, _ := strconv.Atoi(resp.Header.Get("Retry-After")); s < 1 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	for range 5 {
		resp, err := http.Get(base + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("plain request under the upgrade limit: %v %v", err, resp)
		}
		resp.Body.Close()
	}
}

// stopRecorder keeps the attributes of the "stopped" line Run logs.
type stopRecorder struct {
	mu    sync.Mutex
	attrs map[string]int64
}

func (s *stopRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (s *stopRecorder) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *stopRecorder) WithGroup(string) slog.Handler            { return s }
func (s *stopRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "stopped" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attrs = map[string]int64{}
	r.Attrs(func(a slog.Attr) bool {
		s.attrs[a.Key] = a.Value.Int64()
		return true
	})
	return nil
}

// Shutting down with Run loses nothing: several clients, each served by
// concurrent writers that race the shutdown, receive every message whose
// write returned nil, in order per writer, and then 1001.
func TestShutdownThroughRunDeliversEveryAcceptedMessage(t *testing.T) {
	const clients, writers = 6, 4
	var (
		mu       sync.Mutex
		accepted [clients][writers]int
	)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	decide := func(req *http.Request) (int, router.Decision) {
		i, err := strconv.Atoi(req.URL.Query().Get("client"))
		if err != nil || i < 0 || i >= clients {
			return 0, router.Reject(http.StatusBadRequest, nil, "client out of range")
		}
		return i, router.Upgrade(nil)
	}
	router.WS(r, "/stream", decide, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[int]) error {
		for w := range writers {
			s.Go(func(ctx context.Context) error {
				for seq := 0; ; seq++ {
					if err := out.WriteText(ctx, fmt.Sprintf("%d %d", w, seq)); err != nil {
						return nil // refused: not accepted, so not owed
					}
					mu.Lock()
					accepted[s.Value][w]++
					mu.Unlock()
				}
			})
		}
		<-ctx.Done()
		return context.Cause(ctx)
	})

	logs := &stopRecorder{}
	addr := make(chan net.Addr, 1)
	a := app.New(r, app.Config{Addr: "127.0.0.1:0", Logger: slog.New(logs), NoSignals: true,
		ShutdownTimeout: 5 * time.Second, OnListen: func(x net.Addr) { addr <- x }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	base := "http://" + (<-addr).String()

	type received struct {
		next  [writers]int // the next sequence number expected from each writer
		code  int
		fault error
	}
	got := make([]received, clients)
	enough := make(chan struct{}, clients)
	var wg sync.WaitGroup
	for i := range clients {
		c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/stream?client="+strconv.Itoa(i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Go(func() {
			g := &got[i]
			signalled := false
			for {
				_, p, err := c.ReadMessage()
				if err != nil {
					if ce, ok := errors.AsType[*gorilla.CloseError](err); ok {
						g.code = ce.Code
					} else {
						g.fault = err
					}
					if !signalled {
						enough <- struct{}{}
					}
					return
				}
				var w, seq int
				if _, err := fmt.Sscanf(string(p), "%d %d", &w, &seq); err != nil || w < 0 || w >= writers || seq != g.next[w] {
					g.fault = fmt.Errorf("message %q after %v", p, g.next)
					_ = c.Close()
					continue
				}
				g.next[w]++
				if !signalled && seq >= 200 {
					signalled = true
					enough <- struct{}{}
				}
			}
		})
	}
	for range clients {
		<-enough // every client is receiving at full speed
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	wg.Wait()
	for i := range clients {
		g := &got[i]
		if g.fault != nil || g.code != 1001 {
			t.Fatalf("client %d: %v, close code %d, want 1001", i, g.fault, g.code)
		}
		for w := range writers {
			if g.next[w] < accepted[i][w] {
				t.Fatalf("client %d writer %d: received %d messages, %d were accepted", i, w, g.next[w], accepted[i][w])
			}
		}
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if logs.attrs["graceful"] != clients || logs.attrs["forced"] != 0 {
		t.Fatalf("Run logged %v, want %d graceful and none forced", logs.attrs, clients)
	}
}
