package wstest_test

// Tests of the promises docs/testing.md and the doc comments of package
// wstest make. Each test names the promise and where it is made.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// guard bounds every wait of these tests; it is a failure guard, never a
// way to synchronise.
const guard = 10 * time.Second

// ---- a scripted server peer ----

// rawPeer is the server's end of a connection that a test script drives
// frame by frame, to see exactly what the test client sends.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// readFrame reads one frame from the client, unmasking its payload.
func (p *rawPeer) readFrame() (frames.Header, []byte, error) {
	var hb [frames.MaxHeaderSize]byte
	if _, err := io.ReadFull(p.r, hb[:2]); err != nil {
		return frames.Header{}, nil, err
	}
	n := frames.HeaderSize(hb[0], hb[1])
	if _, err := io.ReadFull(p.r, hb[2:n]); err != nil {
		return frames.Header{}, nil, err
	}
	h, err := frames.ParseHeader(hb[:n])
	if err != nil {
		return h, nil, err
	}
	b := make([]byte, h.Length)
	if _, err := io.ReadFull(p.r, b); err != nil {
		return h, nil, err
	}
	if h.Masked {
		frames.Mask(b, h.Mask, 0)
	}
	return h, b, nil
}

// expectFrame reads a frame and reports an error unless it is a masked
// frame with op and payload.
func (p *rawPeer) expectFrame(op frames.Opcode, payload []byte) {
	h, b, err := p.readFrame()
	if err != nil {
		p.t.Errorf("server: want %v %q from the client: %v", op, payload, err)
		return
	}
	if h.Op != op || !h.Fin || !h.Masked || !bytes.Equal(b, payload) {
		p.t.Errorf("server: got %+v % x from the client, want a masked final %v % x", h, b, op, payload)
	}
}

// write sends a server frame (unmasked).
func (p *rawPeer) write(op frames.Opcode, fin bool, rsv byte, payload []byte) {
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], frames.Header{Op: op, Fin: fin, Rsv: rsv, Length: int64(len(payload))})
	p.writeRaw(append(hb[:n:n], payload...))
}

func (p *rawPeer) writeRaw(b []byte) {
	if _, err := p.conn.Write(b); err != nil {
		p.t.Errorf("server: write: %v", err)
	}
}

func closePayload(code frames.CloseCode, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// scripted starts an in-memory server that accepts one handshake and runs
// script on the connection, closing it when script returns. The channel
// is closed once the script has returned.
func scripted(t *testing.T, script func(p *rawPeer)) (*wstest.Server, <-chan struct{}) {
	t.Helper()
	done := make(chan struct{})
	var once sync.Once
	srv := wstest.NewMemoryServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer u.Conn.Close()
		_ = u.Conn.SetDeadline(time.Now().Add(guard))
		once.Do(func() {
			defer close(done)
			script(&rawPeer{t: t, conn: u.Conn, r: bufio.NewReader(io.MultiReader(bytes.NewReader(u.Buffered), u.Conn))})
		})
	}))
	return srv, done
}

// waitFor returns what ch yields, failing the test after guard.
func waitFor[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("%s: not within %v", what, guard)
		panic("unreachable")
	}
}

// ---- servers ----

// Promise (docs/testing.md, "In memory or on loopback"): r.RemoteAddr has
// the usual host:port form, 127.0.0.1:PORT in memory too.
func TestPromiseMemoryRemoteAddrIsLoopbackHostPort(t *testing.T) {
	addrs := make(chan string, 1)
	srv := wstest.NewMemoryServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addrs <- r.RemoteAddr
	}))
	plainGet(t, srv)
	addr := <-addrs
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" || port == "" {
		t.Fatalf("RemoteAddr %q, want 127.0.0.1:PORT", addr)
	}
}

// Promise (docs/testing.md, "In memory or on loopback"; NewMemoryServer):
// each direction of an in-memory connection buffers up to 1 MiB, like a
// loopback socket, so a peer may write that much before anyone reads.
func TestPromiseMemoryConnectionBuffersOneMiBEachWay(t *testing.T) {
	const mib = 1 << 20
	hijacked := make(chan net.Conn, 1)
	release := make(chan struct{})
	srv := wstest.NewMemoryServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		hijacked <- conn
		<-release
	}))
	defer close(release)
	c, err := srv.NetDial(context.Background(), "tcp", "wstest.invalid:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: wstest.invalid\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	server := waitFor(t, "the handler hijacking", hijacked)
	// Nobody reads either end while these writes run.
	_ = c.SetWriteDeadline(time.Now().Add(guard))
	if n, err := c.Write(make([]byte, mib)); err != nil {
		t.Fatalf("client wrote %d of 1 MiB with nobody reading: %v", n, err)
	}
	_ = server.SetWriteDeadline(time.Now().Add(guard))
	if n, err := server.Write(make([]byte, mib)); err != nil {
		t.Fatalf("server wrote %d of 1 MiB with nobody reading: %v", n, err)
	}
}

// Promise (docs/testing.md, table: a loopback server is "reachable by any
// client"): an independent client (gorilla/websocket) talks to NewServer.
// Server.NetDial "connects to the server whatever addr says".
func TestPromiseLoopbackServerReachableByAnyClient(t *testing.T) {
	srv := wstest.NewServer(t, wstest.Handler(struct{}{}, echo, echoHandler()))
	d := gorilla.Dialer{HandshakeTimeout: guard}
	ws, resp, err := d.Dial(srv.URL()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(guard))
	if err := ws.WriteMessage(gorilla.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if kind, p, err := ws.ReadMessage(); err != nil || kind != gorilla.TextMessage || string(p) != "hi" {
		t.Fatalf("echo: %v %q %v", kind, p, err)
	}
	_ = ws.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, ""), time.Now().Add(guard))
	if _, _, err := ws.ReadMessage(); !gorilla.IsCloseError(err, 1000) {
		t.Fatalf("close: %v", err)
	}

	for _, s := range []*wstest.Server{srv, wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, echo, echoHandler()))} {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		u, _, err := wsclient.Dial(ctx, s.URL()+"/", &wsclient.Options{
			NetDial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return s.NetDial(ctx, network, "nowhere.invalid:1")
			},
		})
		cancel()
		if err != nil {
			t.Fatalf("%s: NetDial with another address: %v", s.URL(), err)
		}
		u.Conn.Close()
	}
}

// Promise (docs/testing.md, table; NewMemoryServer): the URL
// ws://wstest.invalid resolves only through the server's NetDial.
func TestPromiseMemoryURLOnlyThroughNetDial(t *testing.T) {
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, echo, echoHandler()))
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	noProxy := func(*http.Request) (*neturl.URL, error) { return nil, nil }
	if u, _, err := wsclient.Dial(ctx, srv.URL()+"/", &wsclient.Options{Proxy: noProxy}); err == nil {
		u.Conn.Close()
		t.Fatal("a client without the server's NetDial reached the in-memory server")
	}
}

// Promise (docs/testing.md, "In memory or on loopback"): srv.Dial takes
// the same *wsclient.Options as the client, for headers and the like.
func TestPromiseDialOptionsCarryHeaders(t *testing.T) {
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/ws", func(req *http.Request) (string, router.Decision) {
		return req.Header.Get("X-User") + "?" + req.URL.RawQuery, router.Upgrade(nil)
	}, greet)
	srv := wstest.NewMemoryServer(t, r)
	c := srv.Dial(t, "/ws?room=lobby", &wsclient.Options{Header: http.Header{"X-User": {"ann"}}})
	c.ExpectText("welcome, ann?room=lobby")
	c.Close()
}

// Promise (docs/testing.md, "Cleanup and leak checks"; Server doc): when
// the server closes, the listener stops, every connection it accepted is
// closed (upgraded ones without a closing handshake), and the router's
// sessions are gone. Checked with independent clients over loopback.
func TestPromiseLoopbackServerCloseClosesEverything(t *testing.T) {
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	r.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	router.WS(r, "/ws", nil, echo)
	srv := wstest.NewServer(t, r)
	addr := strings.TrimPrefix(srv.URL(), "ws://")

	d := gorilla.Dialer{HandshakeTimeout: guard}
	ws, resp, err := d.Dial(srv.URL()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	defer ws.Close()

	// A keep-alive HTTP connection, idle after its first answer.
	idle, err := net.DialTimeout("tcp", addr, guard)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetDeadline(time.Now().Add(guard))
	io.WriteString(idle, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(idle)
	hresp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, hresp.Body)
	hresp.Body.Close()

	srv.Close()

	_ = ws.SetReadDeadline(time.Now().Add(guard))
	if _, _, err := ws.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseAbnormalClosure) {
		t.Errorf("the WebSocket client read %v, want the transport closed without a CLOSE (1006)", err)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the idle keep-alive connection is still open after Close")
	}
	if n := r.Connections(); n != 0 {
		t.Errorf("%d router sessions after Close", n)
	}
	if c, err := net.DialTimeout("tcp", addr, guard); err == nil {
		c.Close()
		t.Error("the listener still accepts after Close")
	}
}

// Promise (docs/testing.md, "Cleanup and leak checks": "Clients close with
// their test too"; Server.Dial doc): a client the test leaves open is
// closed by the test's cleanup, and the server sees its transport go.
func TestPromiseClientClosesWithItsTest(t *testing.T) {
	srv, ended := endingServer(t)
	t.Run("leaves its client open", func(t *testing.T) {
		srv.Dial(t, "/", nil).SendText("hello")
	})
	if err := waitFor(t, "the client closing with its test", ended); wsconn.CloseStatus(err) != frames.CloseAbnormal {
		t.Fatalf("the session ended with %v, want 1006", err)
	}
}

// Promise (Server doc, Server.Close): Close waits for the handler's
// ServeHTTP calls, "a test error if they take longer than
// DefaultTimeout".
func TestPromiseServerCloseReportsHandlersThatDoNotReturn(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	rec := &recorder{TB: t}
	srv := wstest.NewMemoryServer(rec, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release // ignores its connection closing
	}))
	tr := &http.Transport{DialContext: srv.NetDial}
	defer tr.CloseIdleConnections()
	got := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get("http://wstest.invalid/")
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	waitFor(t, "the handler", entered)
	start := time.Now()
	msg := rec.run(srv.Close)
	close(release)
	<-got
	if want := fmt.Sprintf("wstest: handlers still running %v after the server closed their connections", wstest.DefaultTimeout); msg != want {
		t.Fatalf("Close reported %q, want %q", msg, want)
	}
	if d := time.Since(start); d < wstest.DefaultTimeout {
		t.Fatalf("Close gave up after %v, before DefaultTimeout", d)
	}
}

// Promise (Server doc): "A Server's methods are safe for concurrent use."
func TestPromiseServerMethodsAreSafeForConcurrentUse(t *testing.T) {
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, echo, echoHandler()))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			u, _, err := wsclient.Dial(ctx, srv.URL()+"/", &wsclient.Options{NetDial: srv.NetDial})
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			u.Conn.Close()
		})
	}
	wg.Wait()
	for range 2 {
		wg.Go(srv.Close)
	}
	wg.Wait()
}

// Promise (docs/testing.md, "Cleanup and leak checks"): a router's
// sessions, and the tasks they started with s.Go, end when the server
// closes: no goroutine outlives it, so goleak can check a package.
func TestPromiseNoGoroutineOutlivesTheServer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	started := make(chan struct{}, 2)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		s.Go(func(ctx context.Context) error {
			started <- struct{}{}
			<-ctx.Done()
			return nil
		})
		for range in.Messages(0) {
		}
		return in.Err()
	})
	srv := wstest.NewMemoryServer(t, r)
	for range 2 {
		c := srv.Dial(t, "/ws", nil)
		c.SendText("x")
		waitFor(t, "the session's task starting", started)
	}
	srv.Close()
}

// ---- the test client ----

// Promise (docs/testing.md, "The test client"): the Expect methods answer
// the server's PINGs with PONGs, skip PONGs and reassemble fragmented
// messages, UTF-8 sequences cut between fragments included.
func TestPromiseExpectAnswersPingsSkipsPongsAndReassembles(t *testing.T) {
	srv, done := scripted(t, func(p *rawPeer) {
		p.write(frames.OpPong, true, 0, []byte("unasked"))
		p.write(frames.OpText, false, 0, []byte("caf\xc3"))
		p.write(frames.OpPing, true, 0, []byte("p1"))
		p.write(frames.OpContinuation, true, 0, []byte("\xa9!"))
		p.expectFrame(frames.OpPong, []byte("p1"))
		p.write(frames.OpClose, true, 0, closePayload(frames.CloseNormal, ""))
		p.expectFrame(frames.OpClose, closePayload(frames.CloseNormal, ""))
	})
	c := srv.Dial(t, "/", nil)
	c.ExpectText("café!")
	c.ExpectClose(frames.CloseNormal, "")
	waitFor(t, "script", done)

	// Fragments of colibri's own server, 4 bytes each.
	e := memEcho(t, wsconn.Config{FragmentSize: 4}).Dial(t, "/", nil)
	e.SendText("hello, fragmented world")
	e.ExpectText("hello, fragmented world")
	e.SendBinary(bytes.Repeat([]byte{1, 2, 3}, 7))
	e.ExpectBinary(bytes.Repeat([]byte{1, 2, 3}, 7))
	e.Close()
}

// Promise (docs/testing.md, "The test client"): the Expect methods check
// that the server keeps to RFC 6455: no RSV bits, control frames of at
// most 125 bytes and unfragmented, continuation rules.
func TestPromiseExpectChecksServerFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(p *rawPeer)
		want string
	}{
		{"RSV1 without extension", func(p *rawPeer) { p.write(frames.OpText, true, frames.Rsv1, []byte("x")) }, "server broke the protocol"},
		{"RSV3 on a ping", func(p *rawPeer) { p.write(frames.OpPing, true, frames.Rsv3, nil) }, "server broke the protocol"},
		{"126-byte ping", func(p *rawPeer) { p.write(frames.OpPing, true, 0, make([]byte, 126)) }, "server broke the protocol"},
		{"fragmented ping", func(p *rawPeer) { p.write(frames.OpPing, false, 0, nil) }, "server broke the protocol"},
		{"lone continuation", func(p *rawPeer) { p.write(frames.OpContinuation, true, 0, []byte("x")) }, "server sent an invalid message"},
		{"new message inside one", func(p *rawPeer) {
			p.write(frames.OpText, false, 0, []byte("a"))
			p.write(frames.OpText, true, 0, []byte("b"))
		}, "server sent an invalid message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, done := scripted(t, tc.send)
			got := failure(t, func(tb testing.TB) { srv.Dial(tb, "/", nil).ExpectText("x") })
			if !strings.HasPrefix(got, `wstest: want text "x": `+tc.want) {
				t.Errorf("failure %q, want it to say %q", got, tc.want)
			}
			waitFor(t, "script", done)
		})
	}
}

// Promise (docs/testing.md, "Raw and malformed frames"; SendFrame,
// SendHeader, SendRaw docs): SendFrame masks any frame with a fresh key
// and the correct length; SendHeader writes the header exactly as given
// (masked with h.Mask only when h.Masked, a length that lies); SendRaw
// writes bytes as they are.
func TestPromiseRawSends(t *testing.T) {
	srv, done := scripted(t, func(p *rawPeer) {
		h1, b1, err1 := p.readFrame()
		h2, b2, err2 := p.readFrame()
		if err1 != nil || err2 != nil {
			t.Errorf("server: %v %v", err1, err2)
			return
		}
		if h1.Op != 0x3 || h1.Fin || h1.Rsv != frames.Rsv2 || !h1.Masked || h1.Length != 3 || string(b1) != "abc" {
			t.Errorf("first frame %+v %q, want a masked reserved opcode 0x3, no FIN, RSV2, \"abc\"", h1, b1)
		}
		if h2.Op != frames.OpPing || !h2.Masked || h2.Length != 200 || len(b2) != 200 {
			t.Errorf("second frame %+v, want a masked 200-byte PING", h2)
		}
		if h1.Mask == h2.Mask {
			t.Errorf("both frames masked with %x: not a fresh key", h1.Mask)
		}
		want := [][]byte{
			{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}, // SendHeader, masked with the given key
			{0x82, 0x05, 'h', 'i'},                     // SendHeader, unmasked, announcing 5 bytes
			[]byte("\x00garbage\xff"),                  // SendRaw
		}
		for i, w := range want {
			got := make([]byte, len(w))
			if _, err := io.ReadFull(p.r, got); err != nil || !bytes.Equal(got, w) {
				t.Errorf("raw write %d: server read % x (%v), want % x", i, got, err, w)
			}
		}
	})
	c := srv.Dial(t, "/", nil)
	c.SendFrame(frames.Frame{Op: 0x3, Rsv: frames.Rsv2, Payload: []byte("abc")})
	c.SendFrame(frames.Ping(make([]byte, 200)))
	c.SendHeader(frames.Header{Op: frames.OpText, Fin: true, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 2}, []byte("hi"))
	c.SendHeader(frames.Header{Op: frames.OpBinary, Fin: true, Length: 5}, []byte("hi"))
	c.SendRaw([]byte("\x00garbage\xff"))
	waitFor(t, "script", done)
}

// Promise (docs/testing.md, "Raw and malformed frames": ReadFrame "returns
// the next frame as it came, control frames included; nothing is answered
// or checked").
func TestPromiseReadFrameAnswersNothing(t *testing.T) {
	srv, done := scripted(t, func(p *rawPeer) {
		p.write(frames.OpPing, true, 0, []byte("p"))
		p.write(frames.OpText, false, frames.Rsv1, []byte("t"))
		p.expectFrame(frames.OpText, []byte("after")) // no PONG before it
	})
	c := srv.Dial(t, "/", nil)
	if h, b := c.ReadFrame(); h.Op != frames.OpPing || string(b) != "p" {
		t.Fatalf("first frame %+v %q, want the PING", h, b)
	}
	if h, b := c.ReadFrame(); h.Op != frames.OpText || h.Fin || h.Rsv != frames.Rsv1 || string(b) != "t" {
		t.Fatalf("second frame %+v %q, want the text frame as it came", h, b)
	}
	c.SendText("after")
	waitFor(t, "script", done)
}

// Promise (ExpectMessage doc): "The payload is the caller's": reading more
// messages does not change it.
func TestPromiseExpectMessagePayloadIsTheCallers(t *testing.T) {
	c := memEcho(t, wsconn.Config{}).Dial(t, "/", nil)
	c.SendText("first")
	c.SendBinary([]byte("second"))
	m1 := c.ExpectMessage()
	m2 := c.ExpectMessage()
	if m1.Kind.String() == m2.Kind.String() || string(m1.Payload) != "first" || string(m2.Payload) != "second" {
		t.Fatalf("messages %v %q and %v %q", m1.Kind, m1.Payload, m2.Kind, m2.Payload)
	}
	m2.Payload[0] = 'X'
	c.SendText("third")
	c.ExpectText("third")
	if string(m1.Payload) != "first" || string(m2.Payload) != "Xecond" {
		t.Fatalf("payloads changed under the caller: %q %q", m1.Payload, m2.Payload)
	}
	c.Close()
}

// Promise (docs/testing.md, table: ExpectPing "the next frame must be a
// PING; returns its payload, unanswered"; it skips PONGs).
func TestPromiseExpectPingSkipsPongsAndLeavesThePingUnanswered(t *testing.T) {
	srv, done := scripted(t, func(p *rawPeer) {
		p.write(frames.OpPong, true, 0, []byte("skip me"))
		p.write(frames.OpPing, true, 0, []byte("p"))
		p.expectFrame(frames.OpText, []byte("next")) // not a PONG
	})
	c := srv.Dial(t, "/", nil)
	if got := c.ExpectPing(); string(got) != "p" {
		t.Fatalf("ExpectPing returned %q, want p", got)
	}
	c.SendText("next")
	waitFor(t, "script", done)
}

// Promise (docs/testing.md, table: ExpectPong "the next frame must be a
// PONG with payload p"; ExpectPong doc: it answers PINGs on the way).
func TestPromiseExpectPongAnswersPingsOnTheWay(t *testing.T) {
	srv, done := scripted(t, func(p *rawPeer) {
		p.write(frames.OpPing, true, 0, []byte("a"))
		p.write(frames.OpPong, true, 0, []byte("b"))
		p.expectFrame(frames.OpPong, []byte("a"))
	})
	c := srv.Dial(t, "/", nil)
	c.ExpectPong([]byte("b"))
	waitFor(t, "script", done)
}

// Promise (docs/testing.md, table: ExpectClose "answers it and checks that
// the server then closes the connection"; ExpectClose doc: the answer
// echoes the code, none is sent when the client sent one already, an
// empty CLOSE reads as 1005, anything after the CLOSE or a transport left
// open fails the test).
func TestPromiseExpectCloseAnswersAndWaitsForTheServerToHangUp(t *testing.T) {
	t.Run("echoes the code", func(t *testing.T) {
		srv, done := scripted(t, func(p *rawPeer) {
			p.write(frames.OpClose, true, 0, closePayload(4001, "bye"))
			p.expectFrame(frames.OpClose, closePayload(4001, ""))
		})
		wantFailure(t, failure(t, func(tb testing.TB) { srv.Dial(tb, "/", nil).ExpectClose(4001, "bye") }), "")
		waitFor(t, "script", done)
	})
	t.Run("empty close is 1005", func(t *testing.T) {
		srv, done := scripted(t, func(p *rawPeer) {
			p.write(frames.OpClose, true, 0, nil)
			p.expectFrame(frames.OpClose, []byte{})
		})
		wantFailure(t, failure(t, func(tb testing.TB) { srv.Dial(tb, "/", nil).ExpectClose(frames.CloseNoStatus, "") }), "")
		waitFor(t, "script", done)
	})
	t.Run("no second close", func(t *testing.T) {
		srv, done := scripted(t, func(p *rawPeer) {
			p.expectFrame(frames.OpClose, closePayload(4000, "done"))
			p.write(frames.OpClose, true, 0, closePayload(4000, "done"))
			if err := p.conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Errorf("CloseWrite: %v", err)
			}
			if rest, _ := io.ReadAll(p.r); len(rest) != 0 {
				t.Errorf("the client sent % x after its own CLOSE", rest)
			}
		})
		wantFailure(t, failure(t, func(tb testing.TB) {
			c := srv.Dial(tb, "/", nil)
			c.SendClose(4000, "done")
			c.ExpectClose(4000, "done")
		}), "")
		waitFor(t, "script", done)
	})
	t.Run("bytes after the close", func(t *testing.T) {
		srv, done := scripted(t, func(p *rawPeer) {
			p.write(frames.OpClose, true, 0, closePayload(frames.CloseNormal, ""))
			p.write(frames.OpText, true, 0, []byte("extra"))
			_, _, _ = p.readFrame()
		})
		wantFailure(t, failure(t, func(tb testing.TB) { srv.Dial(tb, "/", nil).ExpectClose(frames.CloseNormal, "") }),
			`wstest: after close 1000 normal closure "": the server sent more bytes after its CLOSE frame`)
		waitFor(t, "script", done)
	})
	t.Run("server keeps the transport open", func(t *testing.T) {
		got := heldFailure(t, func(p *rawPeer) {
			p.write(frames.OpClose, true, 0, closePayload(frames.CloseNormal, ""))
			_, _, _ = p.readFrame()
		}, 50*time.Millisecond, func(c *wstest.Client) { c.ExpectClose(frames.CloseNormal, "") })
		wantFailure(t, got, `wstest: after close 1000 normal closure "": the server did not close the connection within 50ms`)
	})
}

// Promise (docs/testing.md, table: Close is the "closing handshake started
// by the client (1000)"; Close doc: it reads past data until the server's
// CLOSE, fails if the server does not answer within Timeout, and does
// nothing on a client already closed).
func TestPromiseCloseIsTheClientsHandshake(t *testing.T) {
	srv, done := scripted(t, func(p *rawPeer) {
		p.expectFrame(frames.OpClose, closePayload(frames.CloseNormal, ""))
		p.write(frames.OpText, true, 0, []byte("late news"))
		p.write(frames.OpClose, true, 0, closePayload(frames.CloseNormal, ""))
	})
	wantFailure(t, failure(t, func(tb testing.TB) {
		c := srv.Dial(tb, "/", nil)
		c.Close()
		c.Close() // already closed: nothing
	}), "")
	waitFor(t, "script", done)

	got := heldFailure(t, func(p *rawPeer) { _, _, _ = p.readFrame() }, 50*time.Millisecond, func(c *wstest.Client) { c.Close() })
	wantFailure(t, got, "wstest: close: no CLOSE from the server: nothing arrived within 50ms")
}

// Promise (docs/testing.md, table: CloseNow "drops the connection without
// a handshake, as a crashed peer would"; CloseNow doc: safe to call more
// than once).
func TestPromiseCloseNowDropsWithoutAHandshake(t *testing.T) {
	srv, ended := endingServer(t)
	c := srv.Dial(t, "/", nil)
	c.SendText("hello")
	c.CloseNow()
	c.CloseNow()
	if err := waitFor(t, "the server seeing the client go", ended); wsconn.CloseStatus(err) != frames.CloseAbnormal {
		t.Fatalf("the server saw %v, want 1006: a transport gone without a CLOSE", err)
	}
}

// Promise (Client.Timeout doc: "Timeout bounds each Send and Expect call
// and ReadFrame"; ReadFrame doc: the test fails if no frame arrives within
// Timeout or the transport ends).
func TestPromiseTimeoutBoundsSendsAndReadFrame(t *testing.T) {
	// The script never reads.
	got := heldFailure(t, nil, 50*time.Millisecond, func(c *wstest.Client) { c.SendBinary(make([]byte, 3<<20)) })
	if !strings.HasPrefix(got, "wstest: send binary frame: ") {
		t.Errorf("a send into a peer that never reads: failure %q", got)
	}

	got = heldFailure(t, nil, 20*time.Millisecond, func(c *wstest.Client) { c.ReadFrame() })
	wantFailure(t, got, "wstest: read frame: nothing arrived within 20ms")

	srv3, done3 := scripted(t, func(p *rawPeer) {})
	got = failure(t, func(tb testing.TB) { srv3.Dial(tb, "/", nil).ReadFrame() })
	wantFailure(t, got, "wstest: read frame: the server closed the connection without a CLOSE frame")
	waitFor(t, "script", done3)
}

// Promise (docs/testing.md: "c.Timeout bounds each call (default 5 s,
// wstest.DefaultTimeout)").
func TestPromiseDefaultTimeoutIsFiveSeconds(t *testing.T) {
	if wstest.DefaultTimeout != 5*time.Second {
		t.Fatalf("DefaultTimeout %v", wstest.DefaultTimeout)
	}
	srv := memEcho(t, wsconn.Config{})
	start := time.Now()
	got := failure(t, func(tb testing.TB) { srv.Dial(tb, "/", nil).ExpectText("hello") })
	wantFailure(t, got, `wstest: want text "hello": nothing arrived within 5s`)
	if d := time.Since(start); d < 5*time.Second {
		t.Fatalf("gave up after %v", d)
	}
}

// Promise (WaitServerReading doc): it "fails the test ... if the server
// is still busy after Timeout".
func TestPromiseWaitServerReadingFailsWhileTheServerIsBusy(t *testing.T) {
	// The script never reads.
	got := heldFailure(t, nil, 50*time.Millisecond, func(c *wstest.Client) { c.WaitServerReading() })
	wantFailure(t, got, "wstest: the server was not waiting to read within 50ms")
}

// ---- time ----

// Promise (docs/testing.md, "Time": right after Dial, WaitServerReading
// "also means the connection is running and its keep-alive timer armed";
// Clock.Timers doc: "Each open connection with keep-alive or an idle
// timeout has one").
func TestPromiseWaitServerReadingMeansTheTimerIsArmed(t *testing.T) {
	srv, clk := keepAliveServer(t, wsconn.Config{})
	for i := 1; i <= 10; i++ {
		c := srv.Dial(t, "/", nil)
		c.WaitServerReading()
		if n := clk.Timers(); n != i {
			t.Fatalf("%d open connections, %d timers armed", i, n)
		}
	}
}

// Promise (docs/testing.md, "Time": "When Advance returns, their effects
// (a PING written, ...) have happened").
func TestPromiseAdvanceReturnsAfterThePingIsWritten(t *testing.T) {
	srv, clk := keepAliveServer(t, wsconn.Config{})
	c := srv.Dial(t, "/", nil)
	c.WaitServerReading()
	clk.Advance(wsconn.DefaultPingInterval)
	// Closing the server now loses whatever was not written yet.
	srv.Close()
	c.ExpectPing()
}

// Promise (docs/testing.md, "Time": "With a router, pass the same fields
// with router.WithConfig(wsconn.Config{Clock: clk, ...})").
func TestPromiseFakeClockThroughARouter(t *testing.T) {
	clk := wstest.NewClock()
	r := router.New(router.WithConfig(wsconn.Config{Clock: clk, PingInterval: 30 * time.Second, PongTimeout: 20 * time.Second, Logger: quiet}))
	router.WS(r, "/ws/{name}", func(req *http.Request) (string, router.Decision) {
		return req.PathValue("name"), router.Upgrade(nil)
	}, greet)
	srv := wstest.NewMemoryServer(t, r)
	c := srv.Dial(t, "/ws/ann", nil)
	c.ExpectText("welcome, ann")
	c.WaitServerReading()
	clk.Advance(30 * time.Second)
	c.ExpectPing()
	c.WaitServerReading()
	clk.Advance(20 * time.Second)
	c.ExpectClose(frames.CloseGoingAway, "ping timeout")
}

// Promise (docs/testing.md, "Time": WaitTimers is for "a loopback server"
// and "a client's own keep-alive"; "The same clock works on the client
// side: set Config.Clock in wsclient.Options.Config").
func TestPromiseWaitTimersForLoopbackAndClientSide(t *testing.T) {
	t.Run("loopback server", func(t *testing.T) {
		clk := wstest.NewClock()
		srv := wstest.NewServer(t, wstest.Handler(struct{}{}, echo, &wstest.HandlerOptions{Config: &wsconn.Config{Clock: clk, Logger: quiet}}))
		c := srv.Dial(t, "/", nil)
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := clk.WaitTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(wsconn.DefaultPingInterval)
		p := c.ExpectPing()
		c.SendFrame(frames.Pong(p))
		c.Close()
	})
	t.Run("client", func(t *testing.T) {
		clk := wstest.NewClock()
		srv, done := scripted(t, func(p *rawPeer) {
			h, _, err := p.readFrame()
			if err != nil || h.Op != frames.OpPing {
				t.Errorf("server: first frame from the client %+v %v, want its keep-alive PING", h, err)
			}
			p.write(frames.OpClose, true, 0, closePayload(frames.CloseNormal, ""))
			p.expectFrame(frames.OpClose, closePayload(frames.CloseNormal, ""))
		})
		ran := make(chan error, 1)
		go func() {
			ran <- wsclient.Run(context.Background(), srv.URL()+"/", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[*http.Response]) error {
				for range in.Messages(0) {
				}
				return in.Err()
			}, &wsclient.Options{NetDial: srv.NetDial, Config: &wsconn.Config{Clock: clk, Logger: quiet}})
		}()
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := clk.WaitTimers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(wsconn.DefaultPingInterval)
		if err := waitFor(t, "Run returning", ran); err != nil {
			t.Fatalf("Run: %v", err)
		}
		waitFor(t, "script", done)
	})
}

// Promise (docs/testing.md, "Time": "Only the connection's timers are
// fake. Socket deadlines still use real time: WriteTimeout, CloseTimeout";
// Clock doc). A server whose CLOSE goes unanswered hangs up after a real
// CloseTimeout while the fake clock stands still.
func TestPromiseCloseTimeoutRunsOnRealTime(t *testing.T) {
	clk := wstest.NewClock()
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return nil // closes at once with 1000
	}, &wstest.HandlerOptions{Config: &wsconn.Config{Clock: clk, CloseTimeout: 50 * time.Millisecond, Logger: quiet}}))
	got := failure(t, func(tb testing.TB) {
		c := srv.Dial(tb, "/", nil)
		if h, _ := c.ReadFrame(); h.Op != frames.OpClose {
			tb.Fatalf("first frame %+v, want the CLOSE", h)
		}
		c.ReadFrame() // no answer: the server must hang up by itself
	})
	wantFailure(t, got, "wstest: read frame: the server closed the connection without a CLOSE frame")
}

// Promise (clock.go: NewClock "reads 2026-01-01 00:00:00 UTC until it is
// advanced"; AfterFunc: "f runs on the goroutine that calls Advance";
// "calls f once the clock has been advanced by d or more"; "A Clock is
// safe for concurrent use").
func TestPromiseClockBasics(t *testing.T) {
	clk := wstest.NewClock()
	if want := time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC); !clk.Now().Equal(want) || clk.Now().Location() != time.UTC {
		t.Fatalf("NewClock reads %v, want %v", clk.Now(), want)
	}
	self := goroutineID()
	var ranOn uint64
	clk.AfterFunc(0, func() { ranOn = goroutineID() })
	clk.Advance(0)
	if ranOn != self {
		t.Fatalf("f ran on goroutine %d, Advance was called on %d", ranOn, self)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	fired := 0
	for range 4 {
		wg.Go(func() {
			for range 100 {
				tm := clk.AfterFunc(time.Millisecond, func() { mu.Lock(); fired++; mu.Unlock() })
				clk.Advance(time.Millisecond)
				tm.Stop()
				_ = clk.Now()
				_ = clk.Timers()
			}
		})
	}
	wg.Wait()
	if fired != 400 || clk.Timers() != 0 {
		t.Fatalf("%d timers fired, %d armed; want 400 and 0", fired, clk.Timers())
	}
}

func goroutineID() uint64 {
	var b [64]byte
	s := strings.TrimPrefix(string(b[:runtime.Stack(b[:], false)]), "goroutine ")
	var id uint64
	fmt.Sscan(s, &id)
	return id
}

// ---- Handler ----

// Promise (Handler doc: "A refused handshake gets its HTTP error (for
// example 426 for a request that is not an upgrade)").
func TestPromiseHandlerRefusesAPlainRequestWith426(t *testing.T) {
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, echo, echoHandler()))
	resp := plainGet(t, srv)
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %d, want 426", resp.StatusCode)
	}
}

// Promise (docs/testing.md, "Testing a handler without a router": "a
// config with Compression enabled also accepts permessage-deflate in the
// handshake"; Server.Dial doc: extensions offered in opts.Extensions "are
// negotiated but not applied, and frames with RSV bits then fail the
// Expect methods' checks, so read them with ReadFrame").
func TestPromiseHandlerCompressionAndNegotiatedExtensions(t *testing.T) {
	cfg := &wsconn.Config{Compression: wsconn.Compression{Enabled: true}, Logger: quiet}
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, echo, &wstest.HandlerOptions{Config: cfg}))

	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	u, _, err := wsclient.Dial(ctx, srv.URL()+"/", &wsclient.Options{NetDial: srv.NetDial, Config: &wsconn.Config{Compression: wsconn.Compression{Enabled: true}}})
	if err != nil {
		t.Fatal(err)
	}
	u.Conn.Close()
	if len(u.Extensions) != 1 || u.Extensions[0].Name != "permessage-deflate" {
		t.Fatalf("negotiated %v, want permessage-deflate", u.Extensions)
	}

	c := srv.Dial(t, "/", &wsclient.Options{Extensions: []wsconn.Extension{{Name: "permessage-deflate"}}})
	if ext := c.Response().Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("Sec-WebSocket-Extensions %q", ext)
	}
	c.SendText(strings.Repeat("compress me ", 100))
	if h, _ := c.ReadFrame(); h.Op != frames.OpText || h.Rsv&frames.Rsv1 == 0 {
		t.Fatalf("echo %+v, want a compressed (RSV1) text frame as it came", h)
	}
}
