package app_test

// Adversarial tests of App.Serve and Run against their documented
// promises (app.Config, docs/closing.md, docs/configuration.md,
// docs/http2.md) that the other test files do not reach.

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/internal/testlog"
)

// Config.HTTP2: "Default false: TLS clients get HTTP/1.1, as before."
// A TLSConfig that lists "h2" in NextProtos (as autocert.Manager's
// TLSConfig does, or one shared with another server) must not turn
// HTTP/2 on behind the option's back.
func TestAdvAppHTTP2OffEvenWhenTLSConfigListsH2(t *testing.T) {
	cert, pool := h2test.Certificate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(newRouter(), app.Config{
		Logger:    quiet,
		NoSignals: true,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	client := h2test.NewClient(pool)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		client.Close()
	}()
	base := "https://" + ln.Addr().String()

	// HTTP/1.1 works.
	d := gorilla.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial("wss://"+ln.Addr().String()+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// An HTTP/2-only client must not be served over HTTP/2.
	resp, err := client.HTTP.Get(base + "/healthz")
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor == 2 {
			t.Fatalf("GET answered over %s with Config.HTTP2 false", resp.Proto)
		}
	}
	if s, _, err := client.Dial(context.Background(), base+"/echo", nil); err == nil {
		s.CloseNow()
		t.Fatal("a WebSocket over HTTP/2 was accepted with Config.HTTP2 false")
	}
}

// Serve given a context that has ended already serves nothing, shuts
// down cleanly, closes the listener and still tells OnListen.
func TestAdvAppServeWithEndedContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listened := make(chan net.Addr, 1)
	logs := &testlog.Buffer{}
	a := app.New(newRouter(), app.Config{NoSignals: true, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		OnListen: func(x net.Addr) { listened <- x }})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve with an ended context did not return")
	}
	if got := <-listened; got.String() != ln.Addr().String() {
		t.Fatalf("OnListen got %v, want %v", got, ln.Addr())
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the listener is still open after Serve returned")
	}
	if !strings.Contains(logs.String(), "graceful=0 forced=0") {
		t.Fatalf("no shutdown report; log:\n%s", logs.String())
	}
}

// A certificate that cannot be loaded fails Serve at once, with the
// listener closed.
func TestAdvAppServeBadCertificateClosesListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(newRouter(), app.Config{NoSignals: true, Logger: quiet,
		CertFile: t.TempDir() + "/missing.pem", KeyFile: t.TempDir() + "/missing-key.pem"})
	done := make(chan error, 1)
	go func() { done <- a.Serve(context.Background(), ln) }()
	select {
	case err := <-done:
		if err == nil || !strings.HasPrefix(err.Error(), "app: ") {
			t.Fatalf("Serve with a missing certificate: %v, want an app: error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve with a missing certificate did not return")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Serve failed: %v, want net.ErrClosed", err)
	}
}

// MaxConnections: refused upgrades claim no place, and places come back
// when connections close, for HTTP/1.1 and HTTP/2 alike: after a round of
// refusals and closes, the cap admits as many again.
func TestAdvAppMaxConnectionsPlacesComeBack(t *testing.T) {
	const max = 2
	a, base, client, _, _, _ := tlsApp(t, newRouter(), app.Config{HTTP2: true, MaxConnections: max})
	d := gorilla.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: 5 * time.Second}
	wss := "wss://" + strings.TrimPrefix(base, "https://") + "/echo"
	for round := range 3 {
		c, _, err := d.Dial(wss, nil)
		if err != nil {
			t.Fatalf("round %d: HTTP/1.1 socket: %v", round, err)
		}
		s, _, err := client.Dial(context.Background(), base+"/echo", nil)
		if err != nil {
			t.Fatalf("round %d: HTTP/2 socket: %v", round, err)
		}
		for range 3 {
			if _, resp, err := d.Dial(wss, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("round %d: HTTP/1.1 upgrade at the cap: %v, want 503 with Retry-After 1", round, err)
			}
			if _, resp, err := client.Dial(context.Background(), base+"/echo", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("round %d: HTTP/2 upgrade at the cap: %v, want 503", round, err)
			}
		}
		if n := a.Connections(); n != max {
			t.Fatalf("round %d: Connections() = %d, want %d", round, n, max)
		}
		c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.Close()
		if _, err := s.Close(1000, ""); err != nil {
			t.Fatalf("round %d: closing the HTTP/2 socket: %v", round, err)
		}
		advWaitConns(t, a, 0)
	}
}

// closing.md (Shutdown): "Connections still open at the deadline, because
// ... the peer never answered, have their transports closed without a
// handshake ... counts them as Forced", and Run logs both. An HTTP/2
// socket whose peer never answers the 1001, beside an HTTP/1.1 one that
// does, gives graceful=1 forced=1, and Serve returns nil (the handler
// returned once its transport was closed), within about ShutdownTimeout.
func TestAdvAppShutdownReportMixesGracefulAndForcedOverHTTP2(t *testing.T) {
	const timeout = 400 * time.Millisecond
	_, base, client, _, logs, stop := tlsApp(t, newRouter(), app.Config{HTTP2: true, ShutdownTimeout: timeout})
	d := gorilla.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial("wss://"+strings.TrimPrefix(base, "https://")+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	silent, _, err := client.Dial(context.Background(), base+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow()
	if err := silent.WriteText("hi"); err != nil {
		t.Fatal(err)
	}
	if _, p, err := silent.ReadMessage(); err != nil || string(p) != "hi" {
		t.Fatalf("echo: %q %v", p, err)
	}
	began := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// gorilla answers the CLOSE while reading.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Fatalf("HTTP/1.1 socket at shutdown: %v, want 1001", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if el := time.Since(began); el < timeout || el > timeout+3*time.Second {
		t.Errorf("Serve returned after %v, want about ShutdownTimeout (%v)", el, timeout)
	}
	if !strings.Contains(logs.String(), "graceful=1 forced=1") {
		t.Fatalf("want stopped graceful=1 forced=1; log:\n%s", logs.String())
	}
}

// Config.ShutdownTimeout: Run waits that long "before closing what
// remains". A plain request still running at the deadline (a long poll)
// loses its connection then too, rather than outliving Run.
func TestAdvAppShutdownClosesPlainRequestsAtTheDeadline(t *testing.T) {
	r := newRouter()
	polling := make(chan struct{})
	ended := make(chan struct{})
	r.HandleFunc("GET /poll", func(w http.ResponseWriter, req *http.Request) {
		close(polling)
		select {
		case <-req.Context().Done():
		case <-time.After(30 * time.Second):
		}
		close(ended)
	})
	_, base, stop := start(t, r, app.Config{ShutdownTimeout: 200 * time.Millisecond})
	got := make(chan error, 1)
	go func() {
		resp, err := http.Get(base + "/poll")
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	<-polling
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("the long poll got an answer, want its connection closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll's connection outlived Run")
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll's context did not end")
	}
}
