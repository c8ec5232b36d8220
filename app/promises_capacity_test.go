package app_test

// Promises of docs/capacity.md (and README.md's "one goroutine per idle
// connection", which the capacity model rests on) that a test can check
// in seconds: what an idle socket costs in goroutines, the defaults the
// model names, and what happens at the open-file limit.

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	gws "github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// cappNoFile sets the soft open-file limit to soft (at most the hard
// limit) and restores the old one at the end of the test.
func cappNoFile(t *testing.T, soft uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	lim := old
	lim.Cur = min(soft, old.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// cappOpenFiles counts this process's open file descriptors.
func cappOpenFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(fds)
}

// cappServe runs an app with an echo route on a loopback port and returns
// its address, the app, a channel its handler signals on entry, and a
// channel Serve's result arrives on.
func cappServe(t *testing.T) (string, *app.App, chan struct{}, chan error) {
	t.Helper()
	return cappServeLog(t, quiet)
}

// cappServeLog is cappServe with the app logging to logger.
func cappServeLog(t *testing.T, logger *slog.Logger) (string, *app.App, chan struct{}, chan error) {
	t.Helper()
	entered := make(chan struct{}, 1024)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/echo", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		return echo(ctx, in, out, s)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(r, app.Config{Logger: logger, NoSignals: true, ShutdownTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return ln.Addr().String(), a, entered, done
}

// cappDial opens a WebSocket with gobwas/ws, which starts no goroutines on
// the client's side.
func cappDial(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second)) // a guard
	if _, _, err := (gws.Dialer{}).Upgrade(c, &urlEcho); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

var urlEcho = url.URL{Scheme: "ws", Host: "colibri.test", Path: "/echo"}

// cappEntered waits for k handlers to start.
func cappEntered(t *testing.T, entered chan struct{}, k int) {
	t.Helper()
	guard := time.After(30 * time.Second)
	for range k {
		select {
		case <-entered:
		case <-guard:
			t.Fatal("handlers did not start")
		}
	}
}

// cappEcho checks that c echoes one message.
func cappEcho(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a guard
	defer c.SetDeadline(time.Time{})
	if err := wsutil.WriteClientText(c, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	p, err := wsutil.ReadServerText(c)
	if err != nil || string(p) != "ping" {
		t.Fatalf("echo: %q %v", p, err)
	}
}

// README.md "Fast and lean" (one goroutine per idle connection) and the
// HTTP/1.1 column of docs/http2.md's measurements (goroutines per idle
// socket: 1), on which capacity.md's memory per socket rests: each idle
// WebSocket whose handler waits in in.Messages adds exactly one goroutine
// to the server.
func TestPromiseCapacityOneGoroutinePerIdleSocket(t *testing.T) {
	const n = 100
	cappNoFile(t, uint64(cappOpenFiles(t)+4*n+64))
	addr, a, entered, _ := cappServe(t)
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	open := func(k int) {
		t.Helper()
		for range k {
			c, err := cappDial(addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		cappEntered(t, entered, k)
	}
	open(1)
	cappEcho(t, conns[0])
	base := runtime.NumGoroutine()
	open(n)
	for _, c := range conns {
		cappEcho(t, c)
	}
	want := base + n
	deadline := time.Now().Add(10 * time.Second) // a guard: net/http's connection goroutines end after the hijack
	for runtime.NumGoroutine() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle sockets added %d goroutines, want %d (one each)", n, runtime.NumGoroutine()-base, n)
		}
		time.Sleep(time.Millisecond)
	}
	if got := a.Connections(); got != n+1 {
		t.Fatalf("Connections() = %d, want %d", got, n+1)
	}
}

// capacity.md "The model" (keep-alive: one ping per socket per 30 s) and
// "What is measured" (a hub member holds 256 messages by default): the
// defaults the model is computed with.
func TestPromiseCapacityModelDefaults(t *testing.T) {
	if wsconn.DefaultPingInterval != 30*time.Second {
		t.Errorf("wsconn.DefaultPingInterval = %v, the capacity model assumes 30s", wsconn.DefaultPingInterval)
	}
	if topics.DefaultMaxMessages != 256 {
		t.Errorf("topics.DefaultMaxMessages = %d, capacity.md says 256", topics.DefaultMaxMessages)
	}
}

// capacity.md "File descriptors": a socket takes a descriptor, and a
// process at its soft limit cannot accept more. At the limit the app keeps
// running (the accept that failed is retried), the open sockets are not
// disturbed, and the connection that waited is served once a descriptor
// is free.
func TestPromiseCapacityAtTheFileLimit(t *testing.T) {
	logs := &testlog.Buffer{}
	addr, a, entered, done := cappServeLog(t, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	first, err := cappDial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	cappEntered(t, entered, 1)

	// Take every descriptor under a low limit but one, which the client's
	// socket takes next: the server's accept then finds none.
	cappNoFile(t, uint64(cappOpenFiles(t)+32))
	var fill []*os.File
	defer func() {
		for _, f := range fill {
			f.Close()
		}
	}()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		fill = append(fill, f)
	}
	fill[len(fill)-1].Close()
	fill = fill[:len(fill)-1]

	type dialed struct {
		c   net.Conn
		err error
	}
	waiting := make(chan dialed, 1)
	go func() {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			waiting <- dialed{nil, err}
			return
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a guard
		if _, _, err := (gws.Dialer{}).Upgrade(c, &urlEcho); err != nil {
			c.Close()
			waiting <- dialed{nil, err}
			return
		}
		_ = c.SetDeadline(time.Time{})
		waiting <- dialed{c, nil}
	}()
	deadline := time.Now().Add(20 * time.Second) // a guard
	for !strings.Contains(logs.String(), "too many open files") {
		select {
		case d := <-waiting:
			t.Fatalf("the dial ended before the server hit the limit: %v", d.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never reported the file limit; log:\n%s", logs.String())
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned at the file limit: %v", err)
	default:
	}
	for _, f := range fill {
		f.Close()
	}
	fill = nil
	d := <-waiting
	if d.err != nil {
		t.Fatalf("the connection that waited at the limit: %v", d.err)
	}
	defer d.c.Close()
	cappEcho(t, d.c)
	cappEcho(t, first)
	if n := a.Connections(); n != 2 {
		t.Fatalf("Connections() = %d, want 2", n)
	}
}
