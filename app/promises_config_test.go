package app_test

// Tests of the defaults that docs/configuration.md and docs/security.md
// promise for app.Config and the router's options, through loopback
// sockets and clients colibri does not share code with.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// MaxConnections 0 means no cap: many WebSockets open at once, all served.
func TestPromiseConfigNoConnectionCapByDefault(t *testing.T) {
	const n = 64
	a, base, _ := start(t, newRouter(), app.Config{})
	conns := make([]*gorilla.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, resp, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
		if err != nil {
			t.Fatalf("connection %d: %v (%v)", i, err, resp)
		}
		conns = append(conns, c)
	}
	if got := a.Connections(); got != n {
		t.Fatalf("Connections() = %d, want %d", got, n)
	}
	for _, c := range conns {
		if err := c.WriteMessage(gorilla.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
			t.Fatalf("echo: %q %v", p, err)
		}
	}
}

// cfgpLogs is a concurrency-safe log buffer.
type cfgpLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *cfgpLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *cfgpLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Config.Logger defaults to slog.Default(): the application's lines, the
// connections of routes without a Logger (a handler's failure), and
// net/http's own errors at debug level all go there.
func TestPromiseConfigLoggerDefaultIsSlogDefault(t *testing.T) {
	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })
	var logs cfgpLogs
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))

	r := router.New()
	r.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("cfgp http panic") })
	router.WS(r, "/fail", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return errors.New("cfgp handler failure")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base, _ := serveApp(t, app.New(r, app.Config{}), ln)

	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/fail"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseInternalServerErr) {
		t.Fatalf("got %v, want 1011", err)
	}
	if resp, err := http.Get(base + "/panic"); err == nil {
		resp.Body.Close()
		t.Fatalf("a panicking handler answered %d", resp.StatusCode)
	}
	got := logs.String()
	for _, want := range []string{
		"msg=listening",
		"handler failed", "cfgp handler failure", "route=/fail",
		"level=DEBUG", "cfgp http panic",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("slog.Default() has no %q in:\n%s", want, got)
		}
	}
}

// security.md and configuration.md: request headers are limited to
// net/http's 1 MiB; under it a request is served, well over it it gets 431.
func TestPromiseConfigHeaderSizeDefault(t *testing.T) {
	_, base, _ := start(t, newRouter(), app.Config{})
	for _, tc := range []struct {
		padding int
		want    int
	}{
		{1<<20 - 4<<10, http.StatusOK},
		{1<<20 + 8<<10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		nc, err := net.Dial("tcp", hostOf(base))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		go fmt.Fprintf(nc, "GET /healthz HTTP/1.1\r\nHost: %s\r\nX-Padding: %s\r\n\r\n", hostOf(base), strings.Repeat("a", tc.padding))
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatalf("%d bytes of header: %v", tc.padding, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d bytes of header: %d, want %d", tc.padding, resp.StatusCode, tc.want)
		}
	}
}

// The closure form's route bounds its 101 with its WriteTimeout too (10 s
// when zero or negative), as every ws route does.
func TestPromiseConfigWriteTimeoutBoundsTheClosureForms101(t *testing.T) {
	for _, tc := range []struct {
		set, want time.Duration
	}{
		{0, 10 * time.Second},
		{-1, 10 * time.Second},
		{4 * time.Second, 4 * time.Second},
	} {
		closure := router.Everywhere[struct{}](nil, echo, router.WithConfig(wsconn.Config{Logger: quiet, WriteTimeout: tc.set}))
		ln := watch(t)
		base, _ := serveApp(t, app.New(nil, app.Config{Logger: quiet, WebSocket: closure}), ln)
		c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/anywhere"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := ln.next(t, true); !near(d, tc.want) {
			t.Errorf("WriteTimeout %v: the 101 was written with %v, want %v", tc.set, d, tc.want)
		}
		c.Close()
	}
}

// configuration.md, Router options: a router made without options speaks
// no subprotocol, allows the same host only, and serves its connections
// with the zero wsconn.Config's defaults (a 1 MiB message limit).
func TestPromiseConfigRouterOptionDefaults(t *testing.T) {
	r := router.New()
	router.WS(r, "/ws", nil, echo)
	_, base, _ := start(t, r, app.Config{})
	host := hostOf(base)

	d := gorilla.Dialer{Subprotocols: []string{"chat"}}
	c, resp, err := d.Dial(ws(base, "/ws"), http.Header{"Origin": {"http://" + host}})
	if err != nil {
		t.Fatalf("same-host upgrade: %v", err)
	}
	defer c.Close()
	if c.Subprotocol() != "" || resp.Header.Get("Sec-WebSocket-Protocol") != "" {
		t.Errorf("negotiated %q without WithSubprotocols", c.Subprotocol())
	}
	big := make([]byte, 1<<20)
	if err := c.WriteMessage(gorilla.BinaryMessage, big); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || len(p) != len(big) {
		t.Fatalf("1 MiB echo: %d bytes, %v", len(p), err)
	}
	if err := c.WriteMessage(gorilla.BinaryMessage, append(big, 0)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseMessageTooBig) {
		t.Errorf("1 MiB + 1: %v, want 1009", err)
	}

	_, resp, err = gorilla.DefaultDialer.Dial(ws(base, "/ws"), http.Header{"Origin": {"https://elsewhere.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin upgrade: %v %v, want 403", err, resp)
	}
	if resp != nil {
		resp.Body.Close()
	}
}

// configuration.md: the server Run builds has no overall read or write
// timeout; its ReadHeaderTimeout and IdleTimeout do not reach a WebSocket.
func TestPromiseConfigServerTimeoutsSpareWebSockets(t *testing.T) {
	const short = 50 * time.Millisecond
	_, base, _ := start(t, newRouter(), app.Config{ReadHeaderTimeout: short, IdleTimeout: short})
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(6 * short) // what is tested: the socket outlives both timeouts
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(gorilla.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "still here" {
		t.Fatalf("after the server's timeouts: %q %v", p, err)
	}
}
