package router_test

// Promises of docs/http2.md (WebSockets over HTTP/2, RFC 8441) that
// router/h2_test.go, app/h2_test.go and wsconn/h2_test.go do not check,
// each through a real TLS loopback server.

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// h2pServer is a router served over TLS with HTTP/1.1 and HTTP/2.
type h2pServer struct {
	base   string // https://127.0.0.1:port
	addr   string
	srv    *http.Server
	r      *router.Router
	client *h2test.Client
	pool   *x509.CertPool
	served chan error
}

// h2pServe serves r over TLS on a loopback port; tune adjusts the
// http.Server before it serves. The cleanup shuts the router and the
// server down at the same time, as docs/http2.md asks.
func h2pServe(t *testing.T, r *router.Router, tune func(*http.Server)) *h2pServer {
	t.Helper()
	srv, ln, pool := h2test.Server(t, r)
	if tune != nil {
		tune(srv)
	}
	s := &h2pServer{base: "https://" + ln.Addr().String(), addr: ln.Addr().String(), srv: srv, r: r,
		client: h2test.NewClient(pool), pool: pool, served: make(chan error, 1)}
	go func() { s.served <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.client.Close() // idle connections only; open sockets get their 1001
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = r.Shutdown(ctx) })
		wg.Go(func() { _ = srv.Shutdown(ctx) })
		wg.Wait()
		s.client.Close()
		_ = srv.Close()
		<-s.served
	})
	return s
}

// h2pConnect sends a CONNECT to url with exactly the given :protocol (none
// if empty) and headers, with no defaults added, and returns the response
// with its body read and closed.
func h2pConnect(t *testing.T, c *h2test.Client, url, protocol string, header http.Header) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if protocol != "" {
		req.Header[":protocol"] = []string{protocol}
	}
	//lint:ignore SA1019 x/net/http2.Transport is the only Go client that sends an extended CONNECT (see h2test)
	resp, err := c.Transport.RoundTrip(req)
	if err != nil {
		t.Fatalf("CONNECT %s (:protocol %q): %v", url, protocol, err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	return resp, string(b)
}

// h2pReadClose reads frames until a CLOSE, without answering it.
func h2pReadClose(t *testing.T, s *h2test.Socket) (ws.StatusCode, string) {
	t.Helper()
	for {
		f, err := s.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for CLOSE: %v", err)
		}
		if f.Header.OpCode == ws.OpClose {
			return ws.ParseCloseFrameData(f.Payload)
		}
	}
}

// http2.md "What Go 1.26 has" (how the request looks) and "How colibri
// serves a stream": the CONNECT reaches middleware and decision as
// documented, the query included; the handler's Request() is the CONNECT
// (ProtoMajor 2) and HTTP2() is true; the 200 carries router.Upgrade's
// headers but no Upgrade, Connection or Sec-WebSocket-Accept, even when
// middleware set them.
func TestPromiseH2RequestAndResponseShape(t *testing.T) {
	var seen atomic.Pointer[string]
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, KeepRequest: true}))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			s := fmt.Sprintf("method=%s proto=%s major=%d protocol=%q query=%s host=%s cl=%d upgrade=%q connection=%q key=%q",
				req.Method, req.Proto, req.ProtoMajor, req.Header[":protocol"], req.URL.RawQuery, req.Host,
				req.ContentLength, req.Header.Get("Upgrade"), req.Header.Get("Connection"), req.Header.Get("Sec-WebSocket-Key"))
			seen.Store(&s)
			// Middleware that sets HTTP/1.1 handshake headers: the 200
			// must not carry them (RFC 9113 §8.2.2).
			w.Header().Set("Upgrade", "websocket")
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Sec-WebSocket-Accept", "bogus")
			next.ServeHTTP(w, req)
		})
	})
	router.WS(r, "/ws/who",
		func(req *http.Request) (string, router.Decision) {
			return req.URL.Query().Get("username"), router.Upgrade(http.Header{"X-Extra": {"yes"}})
		},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
			req := s.Request()
			if req == nil {
				return out.WriteText(ctx, "no request kept")
			}
			if err := out.WriteText(ctx, fmt.Sprintf("%s %s %d http2=%v", s.Value, req.Method, req.ProtoMajor, s.HTTP2())); err != nil {
				return err
			}
			for range in.Messages(0) {
			}
			return in.Err()
		})
	h := h2pServe(t, r, nil)
	s, resp := h2pDial(t, h, "/ws/who?username=ada&x=1")
	defer s.CloseNow()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("answered %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	for _, k := range []string{"Upgrade", "Connection", "Sec-Websocket-Accept"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("the 200 carries %s: %q", k, v)
		}
	}
	if got := resp.Header.Get("X-Extra"); got != "yes" {
		t.Errorf("router.Upgrade's header: %q, want yes", got)
	}
	h2pText(t, s, "ada CONNECT 2 http2=true")
	got := *seen.Load()
	want := fmt.Sprintf(`method=CONNECT proto=HTTP/2.0 major=2 protocol=["websocket"] query=username=ada&x=1 host=%s cl=-1 upgrade="" connection="" key=""`, h.addr)
	if got != want {
		t.Errorf("middleware saw\n %s\nwant\n %s", got, want)
	}
	if c, _ := s.Close(ws.StatusNormalClosure, ""); c == nil || c.Code != ws.StatusNormalClosure {
		t.Errorf("close: %v", c)
	}
}

// http2.md "How colibri serves a stream" (CheckRequest for HTTP/2:
// CONNECT, :protocol websocket, Sec-WebSocket-Version 13) and "Refusals
// are ordinary HTTP responses on the stream": bad extended CONNECTs get
// an HTTP status, the handler never runs, and the connection goes on.
func TestPromiseH2BadConnectsRefused(t *testing.T) {
	var ran atomic.Int32
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		ran.Add(1)
		return echo(ctx, in, out, s)
	})
	h := h2pServe(t, r, nil)
	v13 := http.Header{"Sec-Websocket-Version": {"13"}}
	for _, tc := range []struct {
		name     string
		protocol string
		header   http.Header
		status   int
		body     string
		hdr      string // a response header that must be present
	}{
		{"version 8", "websocket", http.Header{"Sec-Websocket-Version": {"8"}}, http.StatusUpgradeRequired, "version 13", "Sec-Websocket-Version"},
		{"no version", "websocket", nil, http.StatusUpgradeRequired, "version 13", "Sec-Websocket-Version"},
		{":protocol not websocket", "webtransport", v13, http.StatusBadRequest, ":protocol must be websocket", ""},
	} {
		resp, body := h2pConnect(t, h.client, h.base+"/ws", tc.protocol, tc.header)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, resp.StatusCode, body, tc.status, tc.body)
		}
		if tc.hdr != "" && resp.Header.Get(tc.hdr) != "13" {
			t.Errorf("%s: %s %q, want 13", tc.name, tc.hdr, resp.Header.Get(tc.hdr))
		}
		if _, ok := resp.Header["Upgrade"]; ok {
			t.Errorf("%s: an HTTP/2 refusal carries Upgrade", tc.name)
		}
	}
	// A GET over HTTP/2 is no extended CONNECT either.
	resp, err := h.client.HTTP.Get(h.base + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode > 499 {
		t.Errorf("GET over HTTP/2 to a ws route: %d, want a 4xx refusal", resp.StatusCode)
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("the handler ran %d times for refused CONNECTs", n)
	}
	// The connection carries a good socket afterwards.
	s, _ := h2pDial(t, h, "/ws")
	defer s.CloseNow()
	h2pEcho(t, s, "after the refusals")
	if d := h.client.Dials(); d != 1 {
		t.Errorf("client dialed %d connections, want 1", d)
	}
	if c, err := s.Close(ws.StatusNormalClosure, ""); err != nil || c.Code != ws.StatusNormalClosure {
		t.Fatalf("close: %v %v", c, err)
	}

	// A router shutting down refuses with 503 and Retry-After.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, resp, err = h.client.Dial(context.Background(), h.base+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("CONNECT after Shutdown: %v, want 503 with Retry-After", err)
	}
}

// h2pDeflate compresses p as one permessage-deflate message (RFC 7692
// §7.2.1: the trailing 0x00 0x00 0xff 0xff removed).
func h2pDeflate(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestSpeed)
	if _, err := fw.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func h2pInflate(t *testing.T, p []byte) []byte {
	t.Helper()
	fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(fr)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// http2.md "Same negotiation": permessage-deflate and the subprotocol are
// negotiated over HTTP/2 through a router as for HTTP/1.1, and compressed
// messages flow both ways on the stream.
func TestPromiseH2CompressionThroughRouter(t *testing.T) {
	r := router.New()
	router.WS(r, "/ws/z", nil, echo[struct{}], router.WithSubprotocols("v1"),
		router.WithConfig(wsconn.Config{Logger: quiet.Logger, Compression: wsconn.Compression{Enabled: true}}))
	h := h2pServe(t, r, nil)
	s, resp, err := h.client.Dial(context.Background(), h.base+"/ws/z", http.Header{
		"Sec-Websocket-Extensions": {"permessage-deflate; client_no_context_takeover; server_no_context_takeover"},
		"Sec-Websocket-Protocol":   {"v1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("Sec-WebSocket-Extensions %q, want permessage-deflate", ext)
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "v1" {
		t.Fatalf("Sec-WebSocket-Protocol %q, want v1", p)
	}
	msg := []byte(strings.Repeat("colibri over one stream, compressed. ", 40))
	f := ws.NewFrame(ws.OpText, true, h2pDeflate(t, msg))
	f.Header.Rsv = ws.Rsv(true, false, false)
	if err := s.WriteFrame(f); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.OpCode != ws.OpText || !got.Header.Fin || !got.Header.Rsv1() {
		t.Fatalf("echo frame %+v, want one compressed text frame", got.Header)
	}
	if p := h2pInflate(t, got.Payload); !bytes.Equal(p, msg) {
		t.Fatalf("echo inflates to %d bytes, want the %d sent", len(p), len(msg))
	}
	if c, err := s.Close(ws.StatusNormalClosure, ""); err != nil || c.Code != ws.StatusNormalClosure {
		t.Fatalf("close: %v %v", c, err)
	}
}

// http2.md "No half-close": after a protocol violation colibri sends its
// CLOSE (1002) and ends the stream itself, without waiting for the peer's
// CLOSE.
func TestPromiseH2ViolationEndsTheStream(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, nil)
	s, _ := h2pDial(t, h, "/ws")
	defer s.CloseNow()
	// An unmasked client frame violates RFC 6455 §5.1. The server may end
	// the stream before the whole frame is written, so the write's error
	// does not count.
	var frame bytes.Buffer
	if err := ws.WriteFrame(&frame, ws.NewTextFrame([]byte("unmasked"))); err != nil {
		t.Fatal(err)
	}
	_ = s.WriteRaw(frame.Bytes())
	if code, _ := h2pReadClose(t, s); code != ws.StatusProtocolError {
		t.Fatalf("CLOSE %d, want 1002", code)
	}
	ended := make(chan error, 1)
	go func() { ended <- s.AwaitEnd() }()
	select {
	case <-ended: // END_STREAM or RST_STREAM: the stream is over either way
	case <-time.After(10 * time.Second):
		t.Fatal("the stream lingers after the 1002 without the peer's CLOSE")
	}
	// The connection is untouched.
	s2, _ := h2pDial(t, h, "/ws")
	defer s2.CloseNow()
	h2pEcho(t, s2, "still here")
}

// http2.md "Trade-offs", "Declined upgrades get 403 ... also in the
// closure form": router.Everywhere's DontUpgrade sends an HTTP/1.1 upgrade
// on to the HTTP route, and answers an extended CONNECT with 403.
func TestPromiseH2DeclineIs403InClosureForm(t *testing.T) {
	var ran atomic.Int32
	r := router.New(router.WithConfig(quiet))
	r.HandleFunc("/page", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "the page") })
	router.Everywhere(func(req *http.Request) (struct{}, router.Decision) {
		if req.URL.Path == "/page" {
			return struct{}{}, router.DontUpgrade()
		}
		return struct{}{}, router.Upgrade(nil)
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		ran.Add(1)
		return echo(ctx, in, out, s)
	})(r)
	h := h2pServe(t, r, nil)

	_, resp, err := h.client.Dial(context.Background(), h.base+"/page", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("declined CONNECT: %v, want 403", err)
	}
	if strings.Contains(err.Error(), "the page") {
		t.Fatalf("the HTTP route answered an extended CONNECT: %v", err)
	}
	d := gorilla.Dialer{TLSClientConfig: &tls.Config{RootCAs: h.pool}, HandshakeTimeout: 5 * time.Second}
	_, resp, err = d.Dial("wss://"+h.addr+"/page", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusOK || body(t, resp) != "the page" {
		t.Fatalf("declined HTTP/1.1 upgrade: %v, want the page", err)
	}
	s, _ := h2pDial(t, h, "/other")
	defer s.CloseNow()
	h2pEcho(t, s, "closure form over HTTP/2")
	if n := ran.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// http2.md "What Go 1.26 has" (Shutdown) and "Trade-offs" (Shutdown): the
// server's Shutdown waits for open WebSocket streams, which only the
// router ends; run at the same time, both return cleanly and the socket
// gets 1001. The router counts the stream while it is open.
func TestPromiseH2ServerShutdownWaitsForSockets(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, nil)
	s, _ := h2pDial(t, h, "/ws")
	defer s.CloseNow()
	h2pEcho(t, s, "open")
	if n := r.Connections(); n != 1 {
		t.Fatalf("Connections() = %d with one HTTP/2 socket open", n)
	}

	// The server alone cannot finish: the stream stays open.
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := h.srv.Shutdown(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("server Shutdown with a WebSocket stream open: %v, want it to wait (DeadlineExceeded)", err)
	}
	h2pEcho(t, s, "still open while the server waits")

	// Together they finish.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rep router.ShutdownReport
	var rerr error
	var wg sync.WaitGroup
	wg.Go(func() { rep, rerr = r.Shutdown(ctx) })
	if code, _ := h2pReadClose(t, s); code != ws.StatusGoingAway {
		t.Fatalf("at shutdown: CLOSE %d, want 1001", code)
	}
	if err := s.WriteFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, ""))); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if rerr != nil || rep.Graceful != 1 || rep.Forced != 0 {
		t.Fatalf("router Shutdown: %+v %v, want 1 graceful", rep, rerr)
	}
	if n := r.Connections(); n != 0 {
		t.Fatalf("Connections() = %d after shutdown", n)
	}
}

// http2.md "Trade-offs" (Shutdown): with your own server, r.Shutdown
// alongside the server's Shutdown ends both cleanly.
func TestPromiseH2ShutdownAlongside(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, nil)
	var socks []*h2test.Socket
	for range 2 {
		s, _ := h2pDial(t, h, "/ws")
		defer s.CloseNow()
		h2pEcho(t, s, "open")
		socks = append(socks, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rerr, serr error
	var rep router.ShutdownReport
	var wg sync.WaitGroup
	wg.Go(func() { rep, rerr = r.Shutdown(ctx) })
	wg.Go(func() { serr = h.srv.Shutdown(ctx) })
	for _, s := range socks {
		_, _, err := s.ReadMessage() // answers the CLOSE
		var ce *h2test.CloseError
		if !errors.As(err, &ce) || ce.Code != ws.StatusGoingAway {
			t.Fatalf("at shutdown: %v, want CLOSE 1001", err)
		}
	}
	wg.Wait()
	if rerr != nil || serr != nil || rep.Graceful != 2 {
		t.Fatalf("router Shutdown %+v %v, server Shutdown %v; want both clean, 2 graceful", rep, rerr, serr)
	}
}

// http2.md "The transport": the stream's own deadlines are turned off, so
// Server.ReadTimeout and WriteTimeout do not cut a WebSocket stream that
// outlives them.
func TestPromiseH2ServerTimeoutsSpareSockets(t *testing.T) {
	const timeout = 150 * time.Millisecond
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, func(s *http.Server) { s.ReadTimeout, s.WriteTimeout = timeout, timeout })
	s, _ := h2pDial(t, h, "/ws")
	defer s.CloseNow()
	h2pEcho(t, s, "before the timeouts")
	// Not synchronisation: the point is to let both timeouts pass.
	time.Sleep(4 * timeout)
	h2pEcho(t, s, "after the timeouts")
	if c, err := s.Close(ws.StatusNormalClosure, ""); err != nil || c.Code != ws.StatusNormalClosure {
		t.Fatalf("close: %v %v", c, err)
	}
}

// http2.md "Trade-offs" (memory) and "Measurements" (goroutines per idle
// socket: 2): an idle WebSocket over HTTP/2 costs the server two
// goroutines, net/http's handler goroutine and the stream's reader. The
// client here is a raw framer with no goroutines of its own, so every
// goroutine the sockets add is the server's.
func TestPromiseH2TwoGoroutinesPerIdleSocket(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	var opened sync.WaitGroup
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		opened.Done()
		return echo(ctx, in, out, s)
	})
	h := h2pServe(t, r, nil)
	raw := h2pDialRaw(t, h.addr, h.pool)
	stream := uint32(1)
	open := func(n int) {
		t.Helper()
		opened.Add(n)
		for range n {
			if status, rst := raw.connect(t, stream, h.addr, "/ws"); status != "200" {
				t.Fatalf("stream %d: status %q, RST %v", stream, status, rst)
			}
			stream += 2
		}
		opened.Wait()
	}
	open(1) // the connection's own goroutines come with the first stream
	base := runtime.NumGoroutine()
	const n = 20
	open(n)
	want := base + 2*n
	deadline := time.Now().Add(10 * time.Second) // a guard: the count is reached when the handlers run
	for runtime.NumGoroutine() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle HTTP/2 sockets cost the server %d goroutines, want %d (2 each)", n, runtime.NumGoroutine()-base, 2*n)
		}
		time.Sleep(time.Millisecond)
	}
	if c := r.Connections(); c != n+1 {
		t.Fatalf("Connections() = %d, want %d", c, n+1)
	}
}

// h2pRaw is a raw HTTP/2 client connection: no goroutines, one stream at
// a time.
type h2pRaw struct {
	conn *tls.Conn
	fr   *http2.Framer
	hb   bytes.Buffer
	enc  *hpack.Encoder
	dec  *hpack.Decoder
	// settings is the server's first SETTINGS frame.
	settings map[http2.SettingID]uint32
}

// h2pDialRaw opens a raw HTTP/2 connection, reads the server's first
// SETTINGS frame and acknowledges it.
func h2pDialRaw(t *testing.T, addr string, pool *x509.CertPool) *h2pRaw {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second)) // a guard, not a wait
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	c := &h2pRaw{conn: conn, fr: http2.NewFramer(conn, conn), dec: hpack.NewDecoder(4096, nil), settings: map[http2.SettingID]uint32{}}
	c.enc = hpack.NewEncoder(&c.hb)
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			continue
		}
		_ = sf.ForeachSetting(func(s http2.Setting) error {
			c.settings[s.ID] = s.Val
			return nil
		})
		if err := c.fr.WriteSettingsAck(); err != nil {
			t.Fatal(err)
		}
		return c
	}
}

// connect sends an extended CONNECT on stream id without waiting for the
// server's permission, and returns the stream's fate: the response's
// :status, or the RST_STREAM's error code.
func (c *h2pRaw) connect(t *testing.T, id uint32, authority, path string) (status string, rst http2.ErrCode) {
	t.Helper()
	c.hb.Reset()
	for _, f := range [][2]string{
		{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"},
		{":path", path}, {":authority", authority}, {"sec-websocket-version", "13"},
	} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "", f.ErrCode
			}
		case *http2.HeadersFrame:
			fields, err := c.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			if f.StreamID != id {
				continue
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					return hf.Value, 0
				}
			}
			t.Fatal("response HEADERS without :status")
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
}

// h2pChildEnv marks the child process of TestPromiseH2SwitchOff.
const h2pChildEnv = "COLIBRI_H2P_SWITCH_OFF_CHILD"

// http2.md "What Go 1.26 has": with the switch on, the server's first
// SETTINGS has ENABLE_CONNECT_PROTOCOL = 1 and the default 250
// MAX_CONCURRENT_STREAMS ("Streams per connection"); with it off
// (GODEBUG=http2xconnect=0, in a child process because net/http reads it
// once), it does not advertise the feature, and a request carrying
// :protocol is refused with a stream PROTOCOL_ERROR before any handler
// (middleware included) runs.
func TestPromiseH2SwitchSettings(t *testing.T) {
	off := os.Getenv(h2pChildEnv) == "1"
	if off && !strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=0") {
		t.Fatal("child without GODEBUG=http2xconnect=0")
	}
	var handled atomic.Int32
	r := router.New(router.WithConfig(quiet))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			handled.Add(1)
			next.ServeHTTP(w, req)
		})
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, nil)
	raw := h2pDialRaw(t, h.addr, h.pool)
	settings := raw.settings

	if off {
		if v, ok := settings[http2.SettingEnableConnectProtocol]; ok && v != 0 {
			t.Errorf("switch off: SETTINGS has ENABLE_CONNECT_PROTOCOL = %d", v)
		}
		status, rst := raw.connect(t, 1, h.addr, "/ws")
		if status != "" || rst != http2.ErrCodeProtocol {
			t.Errorf("switch off: extended CONNECT answered status %q / RST %v, want RST_STREAM PROTOCOL_ERROR", status, rst)
		}
		if n := handled.Load(); n != 0 {
			t.Errorf("switch off: %d requests reached the handler chain", n)
		}
		return
	}

	if v := settings[http2.SettingEnableConnectProtocol]; v != 1 {
		t.Errorf("switch on: ENABLE_CONNECT_PROTOCOL = %d, want 1 (settings %v)", v, settings)
	}
	if v := settings[http2.SettingMaxConcurrentStreams]; v != 250 {
		t.Errorf("MAX_CONCURRENT_STREAMS = %d, want the documented default 250", v)
	}
	if status, rst := raw.connect(t, 1, h.addr, "/ws"); status != "200" {
		t.Errorf("switch on: extended CONNECT answered status %q / RST %v, want 200", status, rst)
	}

	// The same server with the switch off, in a process of its own.
	if testing.Short() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPromiseH2SwitchSettings$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), h2pChildEnv+"=1", "GODEBUG="+h2pGodebugOff())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestPromiseH2SwitchSettings") {
		t.Fatalf("switch-off child: %v\n%s", err, out)
	}
}

// h2pGodebugOff is the process's GODEBUG with http2xconnect=0 in place of
// any http2xconnect setting.
func h2pGodebugOff() string {
	var keep []string
	for _, s := range strings.Split(os.Getenv("GODEBUG"), ",") {
		if s != "" && !strings.HasPrefix(s, "http2xconnect=") {
			keep = append(keep, s)
		}
	}
	return strings.Join(append(keep, "http2xconnect=0"), ",")
}
