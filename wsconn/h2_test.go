package wsconn_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/group"

	"github.com/gobwas/ws"

	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/internal/testlog"
	_ "github.com/colibri-ws/colibri/internal/xconnect" // extended CONNECT for this test binary
	"github.com/colibri-ws/colibri/wsconn"
)

// logBuffer collects log lines from many goroutines.
type logBuffer struct{ testlog.Buffer }

// waitLog waits until the log matches re.
func (l *logBuffer) waitLog(t *testing.T, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(5 * time.Second)
	for !rx.MatchString(l.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line matching %s; log:\n%s", re, l.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// h2Server serves handler over HTTP/2 with TLS on a loopback port: the
// plain-Go way, handshake.Accept and Serve in the handler. It returns the https
// base URL, a client trusting the server, the Group and the server log.
func h2Server(t *testing.T, cfg wsconn.Config, opts *handshake.AcceptOptions, handler handlerFunc) (string, *h2test.Client, *group.Group, *logBuffer) {
	t.Helper()
	return h2ServerGroup(t, &group.Group{}, cfg, opts, handler)
}

func h2ServerGroup(t *testing.T, g *group.Group, cfg wsconn.Config, opts *handshake.AcceptOptions, handler handlerFunc) (string, *h2test.Client, *group.Group, *logBuffer) {
	t.Helper()
	cert, pool := h2test.Certificate(t)
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if ctx, u, ok := enterAndAccept(g, w, r, opts); ok {
			_ = wsconn.Serve(ctx, u, struct{}{}, handler, &cfg)
		}
	})
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s", r.Proto)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	srv := &http.Server{
		Handler:   mux,
		Protocols: &protos,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:  slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	client := h2test.NewClient(pool)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		client.Close()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		<-served
	})
	return "https://" + ln.Addr().String(), client, g, logs
}

func dialH2(t *testing.T, c *h2test.Client, url string, h http.Header) *h2test.Socket {
	t.Helper()
	s, _, err := c.Dial(context.Background(), url, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.CloseNow)
	return s
}

func expectMessage(t *testing.T, s *h2test.Socket, wantOp ws.OpCode, want []byte) {
	t.Helper()
	op, p, err := s.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if op != wantOp || !bytes.Equal(p, want) {
		t.Fatalf("got %v message of %d bytes (%.40q), want %v of %d", op, len(p), p, wantOp, len(want))
	}
}

// describe tells the client how the handler sees its connection, then
// echoes.
func describe(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
	msg := fmt.Sprintf("http2=%v proto=%s method=%s sub=%q", s.HTTP2(), s.Request().Proto, s.Request().Method, s.Subprotocol())
	if err := out.WriteText(ctx, msg); err != nil {
		return err
	}
	return echo(ctx, in, out, s)
}

func TestHTTP2EchoOverStream(t *testing.T) {
	base, client, _, logs := h2Server(t, wsconn.Config{KeepRequest: true}, &handshake.AcceptOptions{Subprotocols: []string{"chat", "echo"}}, describe)
	s := dialH2(t, client, base+"/ws", http.Header{"Sec-Websocket-Protocol": {"v2.other, echo"}})

	if got := s.Response.Header.Get("Sec-WebSocket-Protocol"); got != "echo" {
		t.Fatalf("Sec-WebSocket-Protocol %q, want echo", got)
	}
	for _, h := range []string{"Upgrade", "Connection", "Sec-Websocket-Accept"} {
		if v := s.Response.Header.Get(h); v != "" {
			t.Errorf("HTTP/2 response carries %s: %q", h, v)
		}
	}
	if s.Response.ProtoMajor != 2 {
		t.Fatalf("response over %s", s.Response.Proto)
	}
	expectMessage(t, s, ws.OpText, []byte(`http2=true proto=HTTP/2.0 method=CONNECT sub="echo"`))

	if err := s.WriteText("héllo 🐦"); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, s, ws.OpText, []byte("héllo 🐦"))
	// Larger than the stream's chunk and the HTTP/2 frame size, and
	// fragmented by the client.
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000)
	if err := s.WriteFrame(ws.NewFrame(ws.OpBinary, false, big[:100000])); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFrame(ws.NewFrame(ws.OpContinuation, true, big[100000:])); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, s, ws.OpBinary, big)

	ce, err := s.Close(ws.StatusNormalClosure, "done")
	if err != nil {
		t.Fatal(err)
	}
	if ce.Code != ws.StatusNormalClosure || ce.Reason != "done" {
		t.Fatalf("server closed with %d %q, want the peer's 1000 \"done\" echoed", ce.Code, ce.Reason)
	}
	logs.waitLog(t, `msg="peer closed" .*code=1000`)
}

func TestHTTP2HandlerCloseCode(t *testing.T) {
	base, client, _, _ := h2Server(t, wsconn.Config{}, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			return &wsconn.CloseError{Code: 4001, Reason: "bye " + string(m.Payload)}
		}
		return in.Err()
	})
	s := dialH2(t, client, base+"/ws", nil)
	if err := s.WriteText("ada"); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.ReadMessage()
	var ce *h2test.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "bye ada" {
		t.Fatalf("got %v, want CLOSE 4001 \"bye ada\"", err)
	}
	// ReadMessage answered the CLOSE; the server then ends the stream.
	if err := s.AwaitEnd(); err != nil {
		t.Fatalf("stream ended with %v, want END_STREAM", err)
	}
}

func TestHTTP2ProtocolViolation(t *testing.T) {
	base, client, _, _ := h2Server(t, wsconn.Config{}, nil, echo)
	s := dialH2(t, client, base+"/ws", nil)
	// An unmasked frame from a client breaks RFC 6455 §5.1.
	if err := s.WriteRaw([]byte{0x81, 0x02, 'h', 'i'}); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.ReadMessage()
	var ce *h2test.CloseError
	if !errors.As(err, &ce) || ce.Code != ws.StatusProtocolError {
		t.Fatalf("got %v, want CLOSE 1002", err)
	}
}

// A shutdown wakes the handler's blocked read with a past deadline, sends
// 1001, and must still read the peer's CLOSE afterwards: the stream's
// deadlines are resumable, unlike net/http's own.
func TestHTTP2ShutdownHandshake(t *testing.T) {
	base, client, g, logs := h2Server(t, wsconn.Config{}, nil, echo)
	s := dialH2(t, client, base+"/ws", nil)
	if err := s.WriteText("warm"); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, s, ws.OpText, []byte("warm"))

	type result struct {
		report group.Report
		err    error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := g.Shutdown(ctx)
		done <- result{r, err}
	}()
	f, err := s.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	code, _ := ws.ParseCloseFrameData(f.Payload)
	if f.Header.OpCode != ws.OpClose || code != ws.StatusGoingAway {
		t.Fatalf("got %v %d, want CLOSE 1001", f.Header.OpCode, code)
	}
	// Answer late: the server must still be reading.
	time.Sleep(100 * time.Millisecond)
	if err := s.WriteFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, ""))); err != nil {
		t.Fatal(err)
	}
	if err := s.AwaitEnd(); err != nil {
		t.Fatalf("stream ended with %v, want END_STREAM", err)
	}
	r := <-done
	if r.err != nil || r.report.Graceful != 1 || r.report.Forced != 0 {
		t.Fatalf("shutdown: %+v %v", r.report, r.err)
	}
	logs.waitLog(t, `msg="peer closed" .*code=1001`)
}

// A handler that starts ranging after the background reader took the
// first bytes gets them: handing the stream over costs nothing.
func TestHTTP2ReaderHandover(t *testing.T) {
	started := make(chan struct{})
	base, client, _, _ := h2Server(t, wsconn.Config{}, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-started
		time.Sleep(50 * time.Millisecond) // the background reader holds the stream
		return echo(ctx, in, out, s)
	})
	s := dialH2(t, client, base+"/ws", nil)
	for i := range 3 {
		if err := s.WriteText(fmt.Sprint("early ", i)); err != nil {
			t.Fatal(err)
		}
	}
	close(started)
	for i := range 3 {
		expectMessage(t, s, ws.OpText, []byte(fmt.Sprint("early ", i)))
	}
	if err := s.WriteFrame(ws.NewPingFrame([]byte("p"))); err != nil {
		t.Fatal(err)
	}
	f, err := s.ReadFrame()
	if err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "p" {
		t.Fatalf("got %v %q %v, want PONG p", f.Header.OpCode, f.Payload, err)
	}
}

// A peer that stops reading stalls the stream on HTTP/2 flow control; the
// write timeout resets that stream, and the connection's other streams
// go on.
func TestHTTP2WriteTimeoutResetsOnlyTheStream(t *testing.T) {
	cfg := wsconn.Config{WriteTimeout: 300 * time.Millisecond}
	failed := make(chan error, 1)
	base, client, _, _ := h2Server(t, cfg, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if string(m.Payload) != "flood" {
				if err := out.WriteMessage(ctx, m); err != nil {
					return err
				}
				continue
			}
			chunk := bytes.Repeat([]byte{'x'}, 64<<10)
			for {
				if err := out.WriteBinary(ctx, chunk); err != nil {
					failed <- err
					return err
				}
			}
		}
		return in.Err()
	})
	stalled := dialH2(t, client, base+"/ws", nil)
	if err := stalled.WriteText("flood"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		if !errors.Is(err, wsconn.ErrWriteTimeout) {
			t.Fatalf("write failed with %v, want ErrWriteTimeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled write never timed out")
	}
	other := dialH2(t, client, base+"/ws", nil)
	if err := other.WriteText("still here"); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, other, ws.OpText, []byte("still here"))
	if client.Dials() != 1 {
		t.Fatalf("%d TLS connections, want the one shared", client.Dials())
	}
}

func TestHTTP2Compression(t *testing.T) {
	opts := &handshake.AcceptOptions{Compression: wsconn.Compression{Enabled: true}}
	base, client, _, _ := h2Server(t, wsconn.Config{Compression: wsconn.Compression{Enabled: true}}, opts, echo)
	s := dialH2(t, client, base+"/ws", http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits"}})
	ext := s.Response.Header.Get("Sec-WebSocket-Extensions")
	if !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("Sec-WebSocket-Extensions %q, want permessage-deflate", ext)
	}
	// The client sends uncompressed; the server compresses its answer,
	// which is above the threshold.
	text := strings.Repeat("compress me over HTTP/2 ", 100)
	if err := s.WriteText(text); err != nil {
		t.Fatal(err)
	}
	f, err := s.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.Rsv&0x4 == 0 || !f.Header.Fin || len(f.Payload) >= len(text) {
		t.Fatalf("answer not compressed: rsv %b, %d bytes for %d", f.Header.Rsv, len(f.Payload), len(text))
	}
	plain, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(f.Payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff}))))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	if string(plain) != text {
		t.Fatalf("inflated %d bytes, want the %d sent", len(plain), len(text))
	}
}

func TestHTTP2HandshakeRefusals(t *testing.T) {
	base, client, _, _ := h2Server(t, wsconn.Config{}, &handshake.AcceptOptions{OriginPatterns: []string{"*.example.com"},
		Compression: wsconn.Compression{Enabled: true}}, echo)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"foreign origin", http.Header{"Origin": {"https://evil.test"}}, http.StatusForbidden},
		{"wrong version", http.Header{"Sec-Websocket-Version": {"8"}}, http.StatusUpgradeRequired},
		{"bad extensions", http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; =x"}}, http.StatusBadRequest},
	} {
		_, resp, err := client.Dial(ctx, base+"/ws", tc.header)
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			t.Errorf("%s: %v, want status %d", tc.name, err, tc.status)
		}
	}
	if s, _, err := client.Dial(ctx, base+"/ws", http.Header{"Origin": {"https://app.example.com"}}); err != nil {
		t.Errorf("allowed origin: %v", err)
	} else {
		s.CloseNow()
	}
	// A plain GET over HTTP/2 is not a handshake.
	resp, err := client.HTTP.Get(base + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodConnect {
		t.Errorf("GET over HTTP/2: %d Allow %q, want 405 Allow CONNECT", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestHTTP2GroupLimit(t *testing.T) {
	base, client, g, _ := h2ServerGroup(t, &group.Group{Limit: 1}, wsconn.Config{}, nil, echo)
	s := dialH2(t, client, base+"/ws", nil)
	if g.Len() != 1 {
		t.Fatalf("Len %d with one stream open, want 1", g.Len())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, resp, err := client.Dial(ctx, base+"/ws", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second socket: %v, want 503", err)
	}
	if _, err := s.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Len %d after the socket closed", g.Len())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Between writes no write deadline may end the stream, and keep-alive
// PINGs flow over it. net/http's own stream deadline would reset the stream
// once WriteTimeout passed after a write, here before the second PING.
func TestHTTP2KeepAliveOutlivesWriteTimeout(t *testing.T) {
	cfg := wsconn.Config{WriteTimeout: 80 * time.Millisecond, PingInterval: 150 * time.Millisecond, PongTimeout: 100 * time.Millisecond}
	base, client, _, _ := h2Server(t, cfg, nil, echo)
	s := dialH2(t, client, base+"/ws", nil)
	for pings := 0; pings < 4; pings++ {
		f, err := s.ReadFrame()
		if err != nil {
			t.Fatalf("after %d pings: %v", pings, err)
		}
		if f.Header.OpCode != ws.OpPing {
			t.Fatalf("got %v, want PING", f.Header.OpCode)
		}
		if err := s.WriteFrame(ws.NewPongFrame(f.Payload)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteText("after the pings"); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, s, ws.OpText, []byte("after the pings"))
}
