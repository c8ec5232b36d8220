package app_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gws "github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/internal/testlog"
	_ "github.com/colibri-ws/colibri/internal/xconnect" // extended CONNECT for this test binary
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// tlsApp serves h with TLS on a counting loopback listener through
// App.Serve, and returns the App, its https base URL, a client trusting it,
// the listener, the log and a stop function returning Serve's error.
func tlsApp(t *testing.T, h http.Handler, cfg app.Config) (*app.App, string, *h2test.Client, *countingListener, *testlog.Buffer, func() error) {
	t.Helper()
	cert, pool := h2test.Certificate(t)
	logs := &testlog.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	cfg.NoSignals = true
	cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	a := app.New(h, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, cl) }()
	client := h2test.NewClient(pool)
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			serveErr = <-done
			client.Close()
		})
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return a, "https://" + ln.Addr().String(), client, cl, logs, stop
}

func TestHTTP2AppSharesOneConnection(t *testing.T) {
	a, base, client, ln, logs, stop := tlsApp(t, newRouter(), app.Config{HTTP2: true})
	var socks []*h2test.Socket
	for i := range 3 {
		resp, err := client.HTTP.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(b) != "ok" {
			t.Fatalf("GET %d: %s %q", i, resp.Proto, b)
		}
		s, _, err := client.Dial(context.Background(), base+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.CloseNow()
		socks = append(socks, s)
	}
	for i, s := range socks {
		msg := strings.Repeat("x", i*1000+1)
		if err := s.WriteText(msg); err != nil {
			t.Fatal(err)
		}
		if _, p, err := s.ReadMessage(); err != nil || string(p) != msg {
			t.Fatalf("echo %d: %d bytes, %v", i, len(p), err)
		}
	}
	if a.Connections() != 3 || ln.n.Load() != 1 || client.Dials() != 1 {
		t.Fatalf("%d sockets over %d accepted / %d dialed connections, want 3 over 1", a.Connections(), ln.n.Load(), client.Dials())
	}
	if !strings.Contains(logs.String(), "with WebSockets over HTTP/2") {
		t.Errorf("no startup line about HTTP/2; log:\n%s", logs.String())
	}

	// Stopping sends 1001 on every stream; the sockets answer and Serve
	// returns cleanly.
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	for _, s := range socks {
		_, _, err := s.ReadMessage()
		var ce *h2test.CloseError
		if !errors.As(err, &ce) || ce.Code != gws.StatusGoingAway {
			t.Fatalf("at shutdown: %v, want CLOSE 1001", err)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if !strings.Contains(logs.String(), "graceful=3 forced=0") {
		t.Errorf("shutdown was not graceful; log:\n%s", logs.String())
	}
}

func TestHTTP2StreamsCountTowardsMaxConnections(t *testing.T) {
	_, base, client, _, _, _ := tlsApp(t, newRouter(), app.Config{HTTP2: true, MaxConnections: 1})
	s, _, err := client.Dial(context.Background(), base+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	_, resp, err := client.Dial(context.Background(), base+"/echo", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second socket: %v, want 503 with Retry-After", err)
	}
}

// Without Config.HTTP2 a TLS server speaks HTTP/1.1 only, as it did.
func TestHTTP2OffByDefault(t *testing.T) {
	_, base, _, _, logs, _ := tlsApp(t, newRouter(), app.Config{})
	host := strings.TrimPrefix(base, "https://")
	conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	proto := conn.ConnectionState().NegotiatedProtocol
	conn.Close()
	if proto == "h2" {
		t.Fatalf("negotiated %q without Config.HTTP2", proto)
	}
	d := gorilla.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial("wss://"+host+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteMessage(gorilla.TextMessage, []byte("h1")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "h1" {
		t.Fatalf("echo %q %v", p, err)
	}
	if strings.Contains(logs.String(), "HTTP/2") {
		t.Errorf("HTTP/2 mentioned while off; log:\n%s", logs.String())
	}
}

func TestHTTP2OfferedBesideHTTP1(t *testing.T) {
	_, base, _, _, _, _ := tlsApp(t, newRouter(), app.Config{HTTP2: true})
	host := strings.TrimPrefix(base, "https://")
	for _, want := range []string{"h2", "http/1.1"} {
		conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{want}})
		if err != nil {
			t.Fatal(err)
		}
		got := conn.ConnectionState().NegotiatedProtocol
		conn.Close()
		if got != want {
			t.Errorf("asked for %s, negotiated %q", want, got)
		}
	}
}

func TestHTTP2WithoutTLSWarns(t *testing.T) {
	logs := &testlog.Buffer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(newRouter(), app.Config{HTTP2: true, NoSignals: true, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	c, _, err := gorilla.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "HTTP2 needs TLS") {
		t.Errorf("no warning; log:\n%s", logs.String())
	}
}

func TestHTTP2WarnsWithoutExtendedConnect(t *testing.T) {
	defer app.SetExtendedConnect(false)()
	_, _, _, _, logs, stop := tlsApp(t, newRouter(), app.Config{HTTP2: true})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "does not offer extended CONNECT") || !strings.Contains(logs.String(), "GODEBUG=http2xconnect=1") {
		t.Errorf("no hint; log:\n%s", logs.String())
	}
}
