package handshake_test

// Corners of the API a user calls without the router: handshake.Accept
// from a plain net/http handler, then wsconn.Serve or wsconn.Start with
// the Upgraded it returned, over real loopback sockets. It reuses
// gobwasTestRequest, exchange, advRequest, advDial, maskedText, maskedClose
// and quietLogger from the other test files of the package.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// cornerHandler is the WebSocket handler type of these tests.
type cornerHandler = wsconn.Handler[struct{}]

// cornerServer serves every request with handshake.Accept(opts) and then
// wsconn.Serve (or wsconn.Start when start is set) with handler and cfg.
// Accept's error goes to accepted, Serve's (or Start's) to served. mod,
// if not nil, adjusts the http.Server before it starts. The cleanup
// closes the server.
func cornerServer(t *testing.T, mod func(*httptest.Server), opts *handshake.AcceptOptions, cfg *wsconn.Config, start bool, handler cornerHandler) (addr string, accepted, served <-chan error) {
	t.Helper()
	acc := make(chan error, 16)
	srvd := make(chan error, 16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, opts)
		acc <- err
		if err != nil {
			return
		}
		if start {
			srvd <- wsconn.Start(context.Background(), u, struct{}{}, handler, cfg)
			return
		}
		srvd <- wsconn.Serve(context.Background(), u, struct{}{}, handler, cfg)
	}))
	if mod != nil {
		mod(srv)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), acc, srvd
}

// cornerNoLeaks fails t if a goroutine started after it is left once t
// and its cleanups (servers closed) are done.
func cornerNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// cornerWait receives from ch within d or fails the test.
func cornerWait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(2 * time.Second):
		t.Fatalf("%s: nothing within 2 s", what)
		panic("unreachable")
	}
}

// cornerFrame is a client's masked frame.
func cornerFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := [4]byte{0xa1, 0xb2, 0xc3, 0xd4}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// cornerReadFrame reads one unmasked server frame: its opcode and payload.
func cornerReadFrame(t *testing.T, br *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		t.Fatalf("server frame masked: % x", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(br, e[:]); err != nil {
			t.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(br, e[:]); err != nil {
			t.Fatal(err)
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatalf("reading a payload of %d: %v", n, err)
	}
	return h[0] & 0x0f, payload
}

// cornerCollect is a handler that sends each message it receives
// ("t:" or "b:" and the payload) to got, then returns in.Err().
func cornerCollect(got chan<- string) cornerHandler {
	return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			kind := "b:"
			if m.Kind == messages.KindText {
				kind = "t:"
			}
			got <- kind + string(m.Payload)
		}
		return in.Err()
	}
}

// TestAcceptCornerRefusalsAreTheirErrorOnTheWire: each refusal Accept
// makes is an ordinary HTTP response on a connection that is not
// hijacked: the status and the body ("Message\n") of the *handshake.Error
// Accept returns, text/plain with nosniff, the Error's Header, and the
// next request on the same connection is answered, up to a 101.
func TestAcceptCornerRefusalsAreTheirErrorOnTheWire(t *testing.T) {
	addr, accepted, served := cornerServer(t, nil, &handshake.AcceptOptions{
		OriginPatterns: []string{"*.example.com"},
		Compression:    wsconn.Compression{Enabled: true},
	}, &wsconn.Config{Logger: quietLogger, PingInterval: -1}, false, cornerCollect(make(chan string, 1)))
	base := gobwasTestRequest("/", "app.test")
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"POST", strings.Replace(base, "GET", "POST", 1), 405},
		{"no Upgrade", strings.Replace(base, "Upgrade: websocket\r\n", "", 1), 426},
		{"no Connection upgrade", strings.Replace(base, "Connection: Upgrade", "Connection: keep-alive", 1), 400},
		{"version 8", strings.Replace(base, "Version: 13", "Version: 8", 1), 426},
		{"short key", strings.Replace(base, "Key: dGhlIHNhbXBsZSBub25jZQ==", "Key: dGhlIHNhbXBsZQ==", 1), 400},
		{"foreign origin", advRequest("/", "app.test", "Origin: https://evil.test\r\n"), 403},
		{"null origin", advRequest("/", "app.test", "Origin: null\r\n"), 403},
		{"malformed extensions", advRequest("/", "app.test", "Sec-WebSocket-Extensions: permessage-deflate;;\r\n"), 400},
	} {
		c, br := advDial(t, addr)
		resp, body, err := exchange(c, br, tc.raw)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		aerr := cornerWait(t, accepted, tc.name+": Accept")
		he, ok := errors.AsType[*handshake.Error](aerr)
		if !ok {
			t.Fatalf("%s: Accept returned %v, want a *handshake.Error", tc.name, aerr)
		}
		if resp.StatusCode != tc.status || he.Status != tc.status {
			t.Errorf("%s: %d on the wire, Error.Status %d, want %d", tc.name, resp.StatusCode, he.Status, tc.status)
		}
		if body != he.Message+"\n" {
			t.Errorf("%s: body %q, want the Error's message %q and a newline", tc.name, body, he.Message)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: Content-Type %q, X-Content-Type-Options %q", tc.name, ct, resp.Header.Get("X-Content-Type-Options"))
		}
		for k, vs := range he.Header {
			if got := resp.Header.Values(k); strings.Join(got, ",") != strings.Join(vs, ",") {
				t.Errorf("%s: header %s %q on the wire, the Error has %q", tc.name, k, got, vs)
			}
		}
		// Not hijacked: the same connection takes the next request.
		resp, _, err = exchange(c, br, base)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("%s: the next request on the connection got %v, %v; want 101", tc.name, resp, err)
		}
		if err := cornerWait(t, accepted, tc.name+": Accept of the next request"); err != nil {
			t.Fatalf("%s: second Accept: %v", tc.name, err)
		}
		if _, err := c.Write(maskedClose); err != nil {
			t.Fatal(err)
		}
		if err := cornerWait(t, served, tc.name+": Serve"); err != nil {
			t.Errorf("%s: Serve after a clean close returned %v", tc.name, err)
		}
	}
}

// noHijackWriter hides the Hijacker of the ResponseWriter it wraps, as a
// middleware's wrapper without Unwrap does.
type noHijackWriter struct{ http.ResponseWriter }

// TestAcceptCornerHijackUnsupportedIsARefusal: Accept's doc says "On a
// refusal it writes the HTTP error itself and returns a *Error". When the
// ResponseWriter cannot be hijacked, Accept writes a 500 with a body; the
// error it returns must then be the *handshake.Error of that 500, or a
// caller that answers non-*Error failures itself writes a second response.
func TestAcceptCornerHijackUnsupportedIsARefusal(t *testing.T) {
	accepted := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := handshake.Accept(noHijackWriter{w}, r, nil)
		accepted <- err
	}))
	defer srv.Close()
	c, br := advDial(t, srv.Listener.Addr().String())
	resp, body, err := exchange(c, br, gobwasTestRequest("/", "x"))
	if err != nil {
		t.Fatal(err)
	}
	aerr := cornerWait(t, accepted, "Accept")
	if resp.StatusCode != http.StatusInternalServerError || strings.TrimSpace(body) == "" {
		t.Fatalf("answer %d %q, want 500 with a body", resp.StatusCode, body)
	}
	he, ok := errors.AsType[*handshake.Error](aerr)
	if !ok || he.Status != http.StatusInternalServerError || body != he.Message+"\n" {
		t.Fatalf("Accept wrote %d %q but returned %T %v, want the *handshake.Error of that answer", resp.StatusCode, body, aerr, aerr)
	}
}

// TestAcceptCornerOriginPatterns: CheckOrigin as its doc spells it out,
// through Accept: patterns compared case-insensitively on host[:port],
// a default port counting as given and as left out, "null" refused
// whatever the patterns, and SkipOriginCheck taking any Origin.
func TestAcceptCornerOriginPatterns(t *testing.T) {
	opts := map[string]*handshake.AcceptOptions{
		"/ports": {OriginPatterns: []string{"localhost:*", "EXAMPLE.com", "secure.test:443"}},
		"/star":  {OriginPatterns: []string{"*"}},
		"/null":  {OriginPatterns: []string{"null", "*"}},
		"/skip":  {SkipOriginCheck: true},
	}
	accepted := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, opts[r.URL.Path])
		if err == nil {
			u.Conn.Close()
		}
		accepted <- err
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	for _, tc := range []struct {
		path, host, origin string
		status             int
	}{
		{"/ports", "app.test", "http://localhost", 101},
		{"/ports", "app.test", "http://LocalHost:5173", 101},
		{"/ports", "app.test", "https://localhost:443", 101},
		{"/ports", "app.test", "http://localhost.evil.test", 403},
		{"/ports", "app.test", "https://example.com", 101},
		{"/ports", "app.test", "https://example.com:443", 101},
		{"/ports", "app.test", "http://example.com:80", 101},
		{"/ports", "app.test", "https://example.com:8443", 403},
		{"/ports", "app.test", "https://secure.test", 101},
		{"/ports", "app.test", "http://secure.test", 403},
		{"/ports", "[::1]:8080", "http://[::1]:8080", 101},
		{"/ports", "[::1]:8080", "http://[::1]:9090", 403},
		{"/star", "app.test", "https://anything.test:1234", 101},
		{"/star", "app.test", "null", 403},
		{"/null", "app.test", "null", 403},
		{"/skip", "app.test", "null", 101},
		{"/skip", "app.test", "chrome-extension://abc", 101},
	} {
		c, br := advDial(t, addr)
		resp, body, err := exchange(c, br, advRequest(tc.path, tc.host, "Origin: "+tc.origin+"\r\n"))
		if err != nil {
			t.Fatalf("%s %s from %s: %v", tc.path, tc.host, tc.origin, err)
		}
		aerr := cornerWait(t, accepted, "Accept")
		if resp.StatusCode != tc.status {
			t.Errorf("%s on %s from %s: %d %q, want %d", tc.path, tc.host, tc.origin, resp.StatusCode, body, tc.status)
		}
		if (aerr == nil) != (tc.status == 101) {
			t.Errorf("%s on %s from %s: Accept returned %v", tc.path, tc.host, tc.origin, aerr)
		}
		c.Close()
	}
}

// smallBufferListener makes the kernel's send buffer of every accepted
// connection small, so that a peer that does not read blocks writes soon.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestAcceptCornerTimeoutBoundsA101NobodyReads: AcceptOptions.Timeout
// bounds writing the 101. A client that does not read a 101 too large
// for the sockets' buffers makes Accept fail after the Timeout, having
// closed the connection, rather than hang the handler.
func TestAcceptCornerTimeoutBoundsA101NobodyReads(t *testing.T) {
	const timeout = 200 * time.Millisecond
	big := strings.Repeat("x", 1<<20)
	var hdr http.Header = map[string][]string{"X-Big": {big, big}}
	type result struct {
		err     error
		elapsed time.Duration
	}
	results := make(chan result, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		u, err := handshake.Accept(w, r, &handshake.AcceptOptions{Header: hdr, Timeout: timeout})
		if err == nil {
			u.Conn.Close()
		}
		results <- result{err, time.Since(start)}
	}))
	srv.Listener = smallBufferListener{srv.Listener}
	srv.Start()
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := io.WriteString(c, gobwasTestRequest("/", "x")); err != nil {
		t.Fatal(err)
	}
	r := cornerWait(t, results, "Accept with a client that does not read")
	if r.err == nil {
		t.Fatalf("Accept wrote a 2 MiB 101 to a client that reads nothing")
	}
	if r.elapsed < timeout/2 || r.elapsed > timeout+time.Second {
		t.Errorf("Accept failed after %v, want about the Timeout %v", r.elapsed, timeout)
	}
	// The connection is closed: the client reads to its end.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Errorf("after the failed 101: %v, want the connection closed", err)
	}
}

// TestAcceptCornerServerTimeoutsDoNotReachTheWebSocket: the deadlines
// net/http set on the connection for the request (ReadTimeout,
// WriteTimeout, ReadHeaderTimeout) do not outlive the handshake: a
// WebSocket quiet for longer than them still reads and writes.
func TestAcceptCornerServerTimeoutsDoNotReachTheWebSocket(t *testing.T) {
	const short = 100 * time.Millisecond
	addr, _, served := cornerServer(t, func(s *httptest.Server) {
		s.Config.ReadTimeout, s.Config.WriteTimeout, s.Config.ReadHeaderTimeout, s.Config.IdleTimeout = short, short, short, short
	}, nil, &wsconn.Config{Logger: quietLogger, PingInterval: -1}, true, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			time.Sleep(3 * short) // past WriteTimeout before the answer
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		return in.Err()
	})
	ws, _, err := gorilla.DefaultDialer.Dial("ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := cornerWait(t, served, "Start"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	time.Sleep(3 * short) // past ReadTimeout before the message
	_ = ws.SetReadDeadline(time.Now().Add(2 * time.Second))
	if err := ws.WriteMessage(gorilla.TextMessage, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := ws.ReadMessage(); err != nil || string(p) != "late" {
		t.Fatalf("echo after the server's timeouts: %q %v", p, err)
	}
	_ = ws.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""))
	if _, _, err := ws.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
		t.Fatalf("close: %v, want 1000 echoed", err)
	}
}

// TestAcceptCornerPipelinedFramesOfEverySize: a client may send frames
// right behind its request, in the same TCP write. Whatever lands in
// net/http's buffer (Upgraded.Buffered) and whatever follows on the
// socket is served in order: small and large messages, a fragmented one
// with a PING between its fragments, and the CLOSE that ends it all,
// under Serve and under Start.
func TestAcceptCornerPipelinedFramesOfEverySize(t *testing.T) {
	for _, start := range []bool{false, true} {
		t.Run(map[bool]string{false: "Serve", true: "Start"}[start], func(t *testing.T) {
			cornerNoLeaks(t)
			got := make(chan string, 16)
			addr, _, served := cornerServer(t, nil, nil, &wsconn.Config{Logger: quietLogger, PingInterval: -1}, start, cornerCollect(got))
			b300 := []byte(strings.Repeat("0123456789", 30))
			b70k := []byte(strings.Repeat("abcdefg", 10000))
			t5k := []byte(strings.Repeat("é", 2500))
			raw := []byte(gobwasTestRequest("/", "x"))
			raw = append(raw, cornerFrame(true, 1, []byte("a"))...)
			raw = append(raw, cornerFrame(true, 2, b300)...)
			raw = append(raw, cornerFrame(false, 1, []byte("frag"))...)
			raw = append(raw, cornerFrame(true, 9, []byte("p"))...)
			raw = append(raw, cornerFrame(false, 0, []byte("men"))...)
			raw = append(raw, cornerFrame(true, 0, []byte("ted"))...)
			raw = append(raw, cornerFrame(true, 2, b70k)...)
			raw = append(raw, cornerFrame(true, 1, t5k)...)
			raw = append(raw, cornerFrame(true, 1, nil)...)
			raw = append(raw, cornerFrame(true, 8, []byte{0x03, 0xe8, 'b', 'y', 'e'})...)
			c, br := advDial(t, addr)
			wrote := make(chan error, 1)
			go func() { _, err := c.Write(raw); wrote <- err }()
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("answer %v, %v", resp, err)
			}
			if op, p := cornerReadFrame(t, br); op != 0xa || string(p) != "p" {
				t.Fatalf("first frame op %x %q, want the PONG of the pipelined PING", op, p)
			}
			if op, p := cornerReadFrame(t, br); op != 8 || len(p) < 2 || binary.BigEndian.Uint16(p) != 1000 {
				t.Fatalf("frame op %x % x, want the CLOSE 1000 echoed", op, p)
			}
			if err := <-wrote; err != nil {
				t.Fatal(err)
			}
			for i, want := range []string{"t:a", "b:" + string(b300), "t:fragmented", "b:" + string(b70k), "t:" + string(t5k), "t:"} {
				if m := cornerWait(t, got, "message"); m != want {
					t.Fatalf("message %d: %.40q (%d bytes), want %.40q (%d bytes)", i, m, len(m), want, len(want))
				}
			}
			if err := cornerWait(t, served, "Serve"); err != nil {
				t.Errorf("Serve or Start returned %v, want nil after a clean close", err)
			}
			// The transport is closed after the closing handshake.
			if _, err := br.ReadByte(); err == nil {
				t.Errorf("a byte after the CLOSE")
			}
			c.Close()
		})
	}
}

// TestAcceptCornerPipelinedCloseToAHandlerThatDoesNotRead: a CLOSE that
// came with the request, in Upgraded.Buffered, reaches even a handler
// that never reads: its context ends, the CLOSE is echoed, Serve returns
// nil, though nothing more ever arrives on the socket.
func TestAcceptCornerPipelinedCloseToAHandlerThatDoesNotRead(t *testing.T) {
	cornerNoLeaks(t)
	ended := make(chan error, 1)
	addr, _, served := cornerServer(t, nil, nil, &wsconn.Config{Logger: quietLogger, PingInterval: -1}, false, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-ctx.Done()
		ended <- context.Cause(ctx)
		return nil
	})
	c, br := advDial(t, addr)
	raw := append([]byte(gobwasTestRequest("/", "x")), cornerFrame(true, 8, []byte{0x0f, 0xa0, 'b', 'y', 'e'})...) // 4000 "bye"
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("answer %v, %v", resp, err)
	}
	if op, p := cornerReadFrame(t, br); op != 8 || len(p) < 2 || binary.BigEndian.Uint16(p) != 4000 {
		t.Fatalf("frame op %x % x, want the CLOSE 4000 echoed", op, p)
	}
	cause := cornerWait(t, ended, "the handler's context")
	if wsconn.CloseStatus(cause) != 4000 {
		t.Errorf("context cause %v, want the peer's close 4000", cause)
	}
	if err := cornerWait(t, served, "Serve"); err != nil {
		t.Errorf("Serve returned %v, want the handler's nil", err)
	}
	c.Close()
}

// TestAcceptCornerServeEndings: what Serve returns for each way a
// connection served from a plain handler ends, as its doc and
// docs/closing.md say, and the code the peer sees: a handler's error
// (1011), a panic (an error, 1011), the peer's clean close (nil), the
// peer vanishing without a CLOSE (the failure, not nil), and the context
// given to Serve ending (1001 going away at once, whatever the handler
// does).
func TestAcceptCornerServeEndings(t *testing.T) {
	boom := errors.New("boom")
	type ending struct {
		name    string
		handler cornerHandler
		peer    func(t *testing.T, c net.Conn, br *bufio.Reader, cancel context.CancelCauseFunc)
		check   func(t *testing.T, err error)
	}
	expectClose := func(code uint16, reason string) func(t *testing.T, c net.Conn, br *bufio.Reader, cancel context.CancelCauseFunc) {
		return func(t *testing.T, c net.Conn, br *bufio.Reader, cancel context.CancelCauseFunc) {
			op, p := cornerReadFrame(t, br)
			if op != 8 || len(p) < 2 || binary.BigEndian.Uint16(p) != code || string(p[2:]) != reason {
				t.Fatalf("frame op %x %q, want CLOSE %d %q", op, p, code, reason)
			}
			_, _ = c.Write(cornerFrame(true, 8, p[:2]))
		}
	}
	stopped := errors.New("stopped by the caller")
	block := make(chan struct{})
	defer close(block)
	for _, tc := range []ending{
		{"handler error", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			return boom
		}, expectClose(1011, "internal error"), func(t *testing.T, err error) {
			if !errors.Is(err, boom) {
				t.Errorf("Serve returned %v, want the handler's error", err)
			}
		}},
		{"panic", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			panic("kaboom")
		}, expectClose(1011, "internal error"), func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), "kaboom") {
				t.Errorf("Serve returned %v, want an error carrying the panic", err)
			}
		}},
		{"clean close", cornerCollect(make(chan string, 1)), func(t *testing.T, c net.Conn, br *bufio.Reader, cancel context.CancelCauseFunc) {
			_, _ = c.Write(maskedClose)
			if op, _ := cornerReadFrame(t, br); op != 8 {
				t.Fatalf("op %x, want the CLOSE echoed", op)
			}
		}, func(t *testing.T, err error) {
			if err != nil {
				t.Errorf("Serve returned %v, want nil", err)
			}
		}},
		{"peer vanishes", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			for range in.Messages(0) {
			}
			return nil
		}, func(t *testing.T, c net.Conn, br *bufio.Reader, cancel context.CancelCauseFunc) {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}, func(t *testing.T, err error) {
			if err == nil || wsconn.CloseStatus(err) != 1006 {
				t.Errorf("Serve returned %v, want the failure (1006)", err)
			}
		}},
		{"context ends, handler ignores it", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			<-ctx.Done()
			return nil
		}, func(t *testing.T, c net.Conn, br *bufio.Reader, cancel context.CancelCauseFunc) {
			cancel(stopped)
			expectClose(1001, "going away")(t, c, br, cancel)
		}, func(t *testing.T, err error) {
			// The handler returned nil after a complete closing
			// handshake; closing.md gives in.Err() the cause, Serve the
			// handler's result or the failure.
			if err != nil && !errors.Is(err, stopped) {
				t.Errorf("Serve returned %v, want nil or the context's cause", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			served := make(chan error, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				u, err := handshake.Accept(w, r, nil)
				if err != nil {
					served <- err
					return
				}
				served <- wsconn.Serve(ctx, u, struct{}{}, tc.handler, &wsconn.Config{Logger: quietLogger, PingInterval: -1, CloseTimeout: time.Second})
			}))
			defer srv.Close()
			c, br := advDial(t, srv.Listener.Addr().String())
			resp, _, err := exchange(c, br, gobwasTestRequest("/", "x"))
			if err != nil || resp.StatusCode != 101 {
				t.Fatalf("answer %v %v", resp, err)
			}
			tc.peer(t, c, br, cancel)
			tc.check(t, cornerWait(t, served, "Serve"))
			c.Close()
		})
	}
}

// TestAcceptCornerClientFlagAgainstGorilla: an Upgraded made by hand on
// the dialing side (Client set, cfg nil) with the bytes read past the 101
// in Buffered: the first message gorilla's server sent right after its
// 101 is served, colibri's frames are masked (gorilla fails unmasked
// ones), and a CLOSE from colibri's side completes.
func TestAcceptCornerClientFlagAgainstGorilla(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var wg sync.WaitGroup
	echoed := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&gorilla.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.Close()
		_ = ws.WriteMessage(gorilla.TextMessage, []byte("hello"))
		for {
			mt, p, err := ws.ReadMessage()
			if err != nil {
				echoed <- "end: " + err.Error()
				return
			}
			_ = ws.WriteMessage(mt, p)
		}
	}))
	defer srv.Close()
	defer wg.Wait()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, gobwasTestRequest("/", "x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the 101 and "hello" both wait in the socket
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("answer %v, %v", resp, err)
	}
	u := wsconn.Upgraded{Conn: c, Client: true}
	if n := br.Buffered(); n > 0 {
		u.Buffered, _ = br.Peek(n)
	}
	got := make(chan string, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = wsconn.Serve(ctx, u, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		n := 0
		for m := range in.Messages(0) {
			got <- string(m.Payload)
			if n++; n == 1 {
				if err := out.WriteText(ctx, "echo me"); err != nil {
					return err
				}
				continue
			}
			return out.Close(1000, "done")
		}
		return in.Err()
	}, nil)
	if err != nil {
		t.Errorf("Serve as a client returned %v", err)
	}
	for _, want := range []string{"hello", "echo me"} {
		if m := cornerWait(t, got, "message"); m != want {
			t.Errorf("message %q, want %q", m, want)
		}
	}
	if end := cornerWait(t, echoed, "gorilla's end"); !strings.Contains(end, "1000") {
		t.Errorf("gorilla's connection ended with %q, want close 1000", end)
	}
}
