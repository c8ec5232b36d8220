package router_test

// Corner cases of WebSockets over HTTP/2 (RFC 8441, docs/http2.md): the
// stream transport of package handshake under flow control, resets,
// deadlines and many streams on one connection. They reuse the helpers of
// promises_h2_test.go and adversarial_h2_test.go (h2pServe, h2pDialRaw,
// advH2Frame, ...).

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// h2cAwait runs f in a goroutine and waits for it at most d.
func h2cAwait(d time.Duration, f func() error) (error, bool) {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

// docs/http2.md (Trade-offs): "HTTP/2 flow control is per stream, so a
// socket whose reader stalls does not stop the others". A handler that
// does not read (a write-only handler, handlers.md) lets colibri read
// ReadAhead and then stop; over HTTP/2 the unread data of its stream must
// not hold the connection's whole receive window, or every other socket
// (and every upload) on the connection stalls with it.
func TestH2CornerUnreadStreamDoesNotStallOtherStreams(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/sink", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-ctx.Done() // write-only: never ranges
		return nil
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	// The stream window app sets, a quarter of the connection's
	// (docs/http2.md): with net/http's default, as large as the
	// connection's, the sink alone would hold the whole window.
	h := h2pServe(t, r, func(srv *http.Server) {
		srv.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 256 << 10}
	})

	sink, _ := h2pDial(t, h, "/sink")
	defer sink.CloseNow()
	other, _ := h2pDial(t, h, "/ws")
	defer other.CloseNow()
	h2pEcho(t, other, "before")

	// 2 MiB to the socket that does not read: its sender blocks on flow
	// control, which is fine; the other socket must not.
	chunk := bytes.Repeat([]byte("s"), 32<<10)
	var sent atomic.Int32
	go func() {
		for range 64 {
			if sink.WriteFrame(ws.NewBinaryFrame(chunk)) != nil {
				return
			}
			sent.Add(1)
		}
	}()
	// Wait until the sink's sender is blocked by flow control: what it
	// sent fills the sink's stream window and what colibri read ahead.
	for last, still := int32(-1), 0; still < 4; {
		time.Sleep(50 * time.Millisecond)
		if n := sent.Load(); n == last {
			still++
		} else {
			last, still = n, 0
		}
		if last >= 64 {
			t.Fatal("the sink took 2 MiB unread: flow control did not hold its sender")
		}
	}
	err, ok := h2cAwait(2*time.Second, func() error {
		if err := other.WriteText("after"); err != nil {
			return err
		}
		op, p, err := other.ReadMessage()
		if err == nil && (op != ws.OpText || string(p) != "after") {
			err = fmt.Errorf("got %v %q", op, p)
		}
		return err
	})
	if !ok {
		other.CloseNow()
		t.Fatal("a socket whose handler does not read stalls the other sockets of its HTTP/2 connection: no echo within 2 s")
	}
	if err != nil {
		t.Fatal(err)
	}
}

// h2cConn is a raw HTTP/2 client connection (h2pRaw) that keeps several
// streams apart: it parses each stream's DATA as WebSocket frames and
// notes how the stream ended. It gives flow-control credit back for what
// it receives, except on streams marked stalled.
type h2cConn struct {
	*h2pRaw
	t       *testing.T
	streams map[uint32]*h2cStream
}

// h2cStream is what the server sent on one stream.
type h2cStream struct {
	buf     []byte
	frames  []ws.Frame
	ended   bool // END_STREAM
	reset   bool // RST_STREAM
	code    http2.ErrCode
	stalled bool // no WINDOW_UPDATE for this stream
}

func h2cDial(t *testing.T, h *h2pServer) *h2cConn {
	t.Helper()
	c := &h2cConn{h2pRaw: h2pDialRaw(t, h.addr, h.pool), t: t, streams: map[uint32]*h2cStream{}}
	return c
}

// open sends an extended CONNECT on stream id and expects 200.
func (c *h2cConn) open(id uint32, addr, path string) *h2cStream {
	c.t.Helper()
	st := &h2cStream{}
	c.streams[id] = st
	if status, rst := c.connect(c.t, id, addr, path); status != "200" {
		c.t.Fatalf("stream %d: status %q, RST %v", id, status, rst)
	}
	return st
}

// send writes one masked client frame on stream id.
func (c *h2cConn) send(id uint32, f ws.Frame, endStream bool) {
	c.t.Helper()
	if err := c.fr.WriteData(id, endStream, advH2Frame(c.t, f)); err != nil {
		c.t.Fatal(err)
	}
}

// step reads one HTTP/2 frame and files it.
func (c *h2cConn) step() {
	c.t.Helper()
	f, err := c.fr.ReadFrame()
	if err != nil {
		c.t.Fatalf("reading the connection: %v", err)
	}
	switch f := f.(type) {
	case *http2.DataFrame:
		st := c.streams[f.StreamID]
		if st == nil {
			return
		}
		st.buf = append(st.buf, f.Data()...)
		for {
			br := bytes.NewReader(st.buf)
			hdr, err := ws.ReadHeader(br)
			if err != nil || int64(br.Len()) < hdr.Length {
				break
			}
			wf := ws.Frame{Header: hdr, Payload: make([]byte, hdr.Length)}
			_, _ = io.ReadFull(br, wf.Payload)
			st.buf = st.buf[len(st.buf)-br.Len():]
			st.frames = append(st.frames, wf)
		}
		if f.StreamEnded() {
			st.ended = true
		}
		if n := uint32(f.Length); n > 0 {
			_ = c.fr.WriteWindowUpdate(0, n)
			if !st.stalled && !st.ended {
				_ = c.fr.WriteWindowUpdate(f.StreamID, n)
			}
		}
	case *http2.RSTStreamFrame:
		if st := c.streams[f.StreamID]; st != nil {
			st.reset, st.code = true, f.ErrCode
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			_ = c.fr.WritePing(true, f.Data)
		}
	case *http2.GoAwayFrame:
		c.t.Fatalf("GOAWAY %v", f.ErrCode)
	}
}

// next returns the next WebSocket frame on stream id, or ok false once
// the stream has ended (END_STREAM or RST_STREAM) with no frame left.
func (c *h2cConn) next(id uint32) (f ws.Frame, ok bool) {
	c.t.Helper()
	st := c.streams[id]
	for len(st.frames) == 0 {
		if st.ended || st.reset {
			return ws.Frame{}, false
		}
		c.step()
	}
	f, st.frames = st.frames[0], st.frames[1:]
	return f, true
}

// until reads until cond holds for stream id.
func (c *h2cConn) until(id uint32, cond func(*h2cStream) bool) {
	c.t.Helper()
	for st := c.streams[id]; !cond(st); {
		c.step()
	}
}

// closeFrame expects the next frame on id to be a CLOSE and parses it.
func (c *h2cConn) closeFrame(id uint32) (ws.StatusCode, string) {
	c.t.Helper()
	for {
		f, ok := c.next(id)
		if !ok {
			c.t.Fatalf("stream %d ended without a CLOSE", id)
		}
		if f.Header.OpCode == ws.OpClose {
			return ws.ParseCloseFrameData(f.Payload)
		}
	}
}

// endState reads until stream id ends (END_STREAM or RST_STREAM) and
// returns what the stream received.
func (c *h2cConn) endState(id uint32) *h2cStream {
	c.t.Helper()
	c.until(id, func(s *h2cStream) bool { return s.ended || s.reset })
	return c.streams[id]
}

// echoOn checks that stream id echoes text.
func (c *h2cConn) echoOn(id uint32, text string) {
	c.t.Helper()
	c.send(id, ws.NewTextFrame([]byte(text)), false)
	f, ok := c.next(id)
	if !ok || f.Header.OpCode != ws.OpText || string(f.Payload) != text {
		c.t.Fatalf("stream %d: echo %v %q (stream open %v), want %q", id, f.Header.OpCode, f.Payload, ok, text)
	}
}

// docs/http2.md (Closing, What Go 1.26 has): closing the WebSocket ends
// the stream with END_STREAM, and with RST_STREAM NO_ERROR only if the
// client has not half-closed; codes go both ways. Peer-initiated with an
// application code, peer-initiated with a half-close, handler-initiated.
func TestH2CornerClosingHandshakeEndsTheStream(t *testing.T) {
	errs := make(chan error, 3)
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if string(m.Payload) == "bye" {
				errs <- nil
				return &wsconn.CloseError{Code: 4002, Reason: "see you"}
			}
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		errs <- in.Err()
		return in.Err()
	})
	h := h2pServe(t, r, nil)
	c := h2cDial(t, h)

	// 1. The peer closes with 4001 and keeps its side open.
	c.open(1, h.addr, "/ws")
	c.echoOn(1, "one")
	c.send(1, ws.NewCloseFrame(ws.NewCloseFrameBody(4001, "tab closed")), false)
	if code, reason := c.closeFrame(1); code != 4001 || reason != "tab closed" {
		t.Fatalf("stream 1: CLOSE %d %q, want the peer's 4001 \"tab closed\" echoed", code, reason)
	}
	if err := <-errs; wsconn.CloseStatus(err) != 4001 {
		t.Fatalf("stream 1: in.Err() = %v, want CloseStatus 4001", err)
	}
	st := c.endState(1)
	if !st.ended {
		t.Fatalf("stream 1 reset (%v) instead of END_STREAM", st.code)
	}
	c.until(1, func(s *h2cStream) bool { return s.reset })
	if st.code != http2.ErrCodeNo {
		t.Fatalf("stream 1: RST_STREAM %v after END_STREAM, want NO_ERROR", st.code)
	}

	// 2. The peer closes with 1000 and half-closes in the same DATA frame.
	c.open(3, h.addr, "/ws")
	c.echoOn(3, "three")
	c.send(3, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")), true)
	if code, _ := c.closeFrame(3); code != ws.StatusNormalClosure {
		t.Fatalf("stream 3: CLOSE %d, want 1000", code)
	}
	if err := <-errs; err != nil {
		t.Fatalf("stream 3: in.Err() = %v, want nil after a 1000", err)
	}
	if st := c.endState(3); !st.ended {
		t.Fatalf("stream 3 reset (%v) instead of END_STREAM", st.code)
	}

	// 3. The handler closes with 4002; the peer answers.
	c.open(5, h.addr, "/ws")
	c.echoOn(5, "five")
	c.send(5, ws.NewTextFrame([]byte("bye")), false)
	if code, reason := c.closeFrame(5); code != 4002 || reason != "see you" {
		t.Fatalf("stream 5: CLOSE %d %q, want 4002 \"see you\"", code, reason)
	}
	<-errs
	c.send(5, ws.NewCloseFrame(ws.NewCloseFrameBody(4002, "")), false)
	st = c.endState(5)
	if !st.ended {
		t.Fatalf("stream 5 reset (%v) instead of END_STREAM", st.code)
	}
	c.until(5, func(s *h2cStream) bool { return s.reset })
	if st.code != http2.ErrCodeNo {
		t.Fatalf("stream 5: RST_STREAM %v after END_STREAM, want NO_ERROR", st.code)
	}

	// The connection goes on; the half-closed stream 3 was never reset.
	c.open(7, h.addr, "/ws")
	c.echoOn(7, "seven")
	if st := c.streams[3]; st.reset {
		t.Fatalf("stream 3, half-closed by the client, was reset with %v", st.code)
	}
	advH2WaitConnections(t, r, 1)
}

// closing.md (Keep-alive, The closing handshake): a peer that does not
// answer PINGs gets 1001 "ping timeout", one that sends no data gets 1001
// "idle timeout", and in both cases the stream ends at once, without the
// CloseTimeout wait. The timeouts rest on read deadlines of the stream.
func TestH2CornerKeepAliveAndIdleTimeoutsOnAStream(t *testing.T) {
	errs := make(chan error, 2)
	loop := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		errs <- in.Err()
		return in.Err()
	}
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ping", nil, loop, router.WithConfig(wsconn.Config{Logger: quiet.Logger,
		PingInterval: 100 * time.Millisecond, PongTimeout: 150 * time.Millisecond, CloseTimeout: 5 * time.Second}))
	router.WS(r, "/idle", nil, loop, router.WithConfig(wsconn.Config{Logger: quiet.Logger,
		IdleTimeout: 200 * time.Millisecond, CloseTimeout: 5 * time.Second}))
	h := h2pServe(t, r, nil)
	c := h2cDial(t, h)

	for _, tc := range []struct {
		id     uint32
		path   string
		reason string
		want   error
	}{
		{1, "/ping", "ping timeout", wsconn.ErrPingTimeout},
		{3, "/idle", "idle timeout", wsconn.ErrIdleTimeout},
	} {
		c.open(tc.id, h.addr, tc.path)
		pings := 0
		var code ws.StatusCode
		var reason string
		for {
			f, ok := c.next(tc.id)
			if !ok {
				t.Fatalf("%s: the stream ended without a CLOSE", tc.path)
			}
			if f.Header.OpCode == ws.OpPing {
				pings++ // never answered
				continue
			}
			if f.Header.OpCode == ws.OpClose {
				code, reason = ws.ParseCloseFrameData(f.Payload)
				break
			}
		}
		closed := time.Now()
		if code != ws.StatusGoingAway || reason != tc.reason {
			t.Fatalf("%s: CLOSE %d %q after %d pings, want 1001 %q", tc.path, code, reason, pings, tc.reason)
		}
		if tc.path == "/ping" && pings == 0 {
			t.Fatalf("%s: no PING before the ping timeout", tc.path)
		}
		st := c.endState(tc.id)
		if d := time.Since(closed); d > 2*time.Second {
			t.Fatalf("%s: the stream ended %v after the CLOSE: the server waited for the silent peer", tc.path, d)
		}
		if st.reset && st.code != http2.ErrCodeNo {
			t.Fatalf("%s: stream reset with %v", tc.path, st.code)
		}
		if err := <-errs; wsconn.CloseStatus(err) != 1001 || !errors.Is(err, tc.want) {
			t.Fatalf("%s: in.Err() = %v, want 1001 wrapping %v", tc.path, err, tc.want)
		}
	}
	advH2WaitConnections(t, r, 0)
}

// closing.md (The closing handshake): after the handler returns, colibri
// waits for the peer's CLOSE for CloseTimeout, then ends the stream; a
// silent peer holds it that long and no longer. The wait rests on the
// stream's read deadline.
func TestH2CornerCloseTimeoutForASilentPeer(t *testing.T) {
	const closeTimeout = 300 * time.Millisecond
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, CloseTimeout: closeTimeout}))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return out.WriteText(ctx, "hi")
	})
	h := h2pServe(t, r, nil)
	c := h2cDial(t, h)
	c.open(1, h.addr, "/ws")
	if f, ok := c.next(1); !ok || string(f.Payload) != "hi" {
		t.Fatalf("first frame %v %q", f.Header.OpCode, f.Payload)
	}
	if code, _ := c.closeFrame(1); code != ws.StatusNormalClosure {
		t.Fatalf("CLOSE %d, want 1000", code)
	}
	sent := time.Now()
	st := c.endState(1)
	d := time.Since(sent)
	if d < closeTimeout*3/4 || d > closeTimeout+1500*time.Millisecond {
		t.Fatalf("the stream ended %v after the CLOSE, want about CloseTimeout (%v)", d, closeTimeout)
	}
	if !st.ended {
		t.Fatalf("stream reset (%v) instead of END_STREAM", st.code)
	}
	advH2WaitConnections(t, r, 0)
	c.open(3, h.addr, "/ws")
	if f, ok := c.next(3); !ok || string(f.Payload) != "hi" {
		t.Fatalf("a new stream after the timeout: %v %q", f.Header.OpCode, f.Payload)
	}
}

// h2cFlood answers "flood" with 64 KiB binary messages until a write
// fails, and reports that write's error and its context's cause; it
// echoes anything else.
func h2cFlood(failed chan<- [2]error) wsconn.Handler[struct{}] {
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if string(m.Payload) != "flood" {
				if err := out.WriteMessage(ctx, m); err != nil {
					return err
				}
				continue
			}
			for {
				if err := out.WriteBinary(ctx, chunk); err != nil {
					<-ctx.Done()
					failed <- [2]error{err, context.Cause(ctx)}
					return err
				}
			}
		}
		failed <- [2]error{nil, in.Err()}
		return in.Err()
	}
}

// stallUntilBlocked marks stream id stalled, asks the handler to flood
// and reads until the server has used the stream's whole initial window
// (65535 bytes): its write is then held by flow control.
func (c *h2cConn) stallUntilBlocked(id uint32) {
	c.t.Helper()
	st := c.streams[id]
	st.stalled = true
	c.send(id, ws.NewTextFrame([]byte("flood")), false)
	got := 0
	for got < 65535 {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatal(err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == id {
			got += len(d.Data())
			_ = c.fr.WriteWindowUpdate(0, uint32(d.Length)) // the connection stays open
		}
	}
}

// The client resets its stream (RST_STREAM CANCEL) while the server's
// write is held by flow control: the write fails at once (not after
// WriteTimeout), the handler's context ends with a 1006 cause
// (handlers.md: the transport failed), the socket stops counting, the
// connection goes on, and once the TCP connection closes nothing of the
// socket is left running (the stream's body pump included).
func TestH2CornerResetDuringStalledWriteLeavesNothingBehind(t *testing.T) {
	failed := make(chan [2]error, 2)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: 10 * time.Second}))
	router.WS(r, "/ws", nil, h2cFlood(failed))
	h := h2pServe(t, r, nil)
	ignore := goleak.IgnoreCurrent()
	c := h2cDial(t, h)
	c.open(1, h.addr, "/ws")
	c.echoOn(1, "warm")
	c.stallUntilBlocked(1)
	time.Sleep(50 * time.Millisecond) // the write is now waiting for credit

	start := time.Now()
	if err := c.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	var res [2]error
	select {
	case res = <-failed:
	case <-time.After(3 * time.Second):
		t.Fatal("the stalled write did not end after the client reset the stream")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the write ended %v after the reset", d)
	}
	if res[0] == nil || errors.Is(res[0], wsconn.ErrWriteTimeout) || !errors.Is(res[0], wsconn.ErrClosed) {
		t.Fatalf("write error %v, want ErrClosed and no write timeout", res[0])
	}
	if wsconn.CloseStatus(res[1]) != 1006 {
		t.Fatalf("context cause %v, want a 1006 *CloseError", res[1])
	}
	advH2WaitConnections(t, r, 0)

	c.open(3, h.addr, "/ws")
	c.echoOn(3, "the connection goes on")
	c.send(3, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")), true)
	if code, _ := c.closeFrame(3); code != ws.StatusNormalClosure {
		t.Fatalf("stream 3: CLOSE %d", code)
	}
	<-failed
	advH2WaitConnections(t, r, 0)
	c.conn.Close()
	goleak.VerifyNone(t, ignore)
}

// The client closes its TCP connection under three sockets: one ranging,
// one write-only waiting on its context, one whose write is held by flow
// control. Every handler's context ends with a 1006 cause, the router
// counts no socket, and no goroutine outlives the connection.
func TestH2CornerTCPCloseEndsEverySocket(t *testing.T) {
	causes := make(chan error, 3)
	failed := make(chan [2]error, 1)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: 10 * time.Second}))
	router.WS(r, "/ranging", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		err := echo(ctx, in, out, s)
		causes <- context.Cause(ctx)
		return err
	})
	router.WS(r, "/waiting", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		if err := out.WriteText(ctx, "ready"); err != nil {
			return err
		}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil
	})
	router.WS(r, "/flood", nil, h2cFlood(failed))
	h := h2pServe(t, r, nil)
	ignore := goleak.IgnoreCurrent()
	c := h2cDial(t, h)
	c.open(1, h.addr, "/ranging")
	c.echoOn(1, "one")
	c.open(3, h.addr, "/waiting")
	if f, ok := c.next(3); !ok || string(f.Payload) != "ready" {
		t.Fatalf("stream 3: %v %q", f.Header.OpCode, f.Payload)
	}
	c.open(5, h.addr, "/flood")
	c.stallUntilBlocked(5)
	advH2WaitConnections(t, r, 3)
	time.Sleep(50 * time.Millisecond) // the flood's write waits for credit

	c.conn.Close()
	deadline := time.After(3 * time.Second)
	for i := range 3 {
		var cause error
		select {
		case cause = <-causes:
		case res := <-failed:
			cause = res[1]
		case <-deadline:
			t.Fatalf("%d of 3 handlers ended after the TCP connection closed", i)
		}
		if wsconn.CloseStatus(cause) != 1006 {
			t.Errorf("a handler's context ended with %v, want a 1006 cause", cause)
		}
	}
	advH2WaitConnections(t, r, 0)
	goleak.VerifyNone(t, ignore)
}

// docs/http2.md (Closing): "A write that is stuck when the connection is
// torn down is cut off with RST_STREAM." A shutdown whose deadline passes
// while the 1001 waits behind a write held by flow control resets that
// stream, counts it as forced, and returns without ErrShutdownIncomplete;
// a second socket on the same connection gets its 1001.
func TestH2CornerShutdownCutsAStuckWrite(t *testing.T) {
	failed := make(chan [2]error, 2)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: 10 * time.Second, CloseTimeout: 10 * time.Second}))
	router.WS(r, "/ws", nil, h2cFlood(failed))
	h := h2pServe(t, r, nil)
	c := h2cDial(t, h)
	c.open(1, h.addr, "/ws")
	c.open(3, h.addr, "/ws")
	c.echoOn(3, "healthy")
	c.stallUntilBlocked(1)
	time.Sleep(50 * time.Millisecond)

	start := time.Now()
	shutc := advH2Shutdown(r, 400*time.Millisecond)
	if code, reason := c.closeFrame(3); code != ws.StatusGoingAway {
		t.Fatalf("stream 3: CLOSE %d %q, want 1001", code, reason)
	}
	c.send(3, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "")), true)
	c.until(1, func(s *h2cStream) bool { return s.reset })
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the stuck stream was reset %v after the shutdown began", d)
	}
	var res advH2Shut
	select {
	case res = <-shutc:
	case <-time.After(3 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if res.err != nil || res.rep.Forced != 1 || res.rep.Graceful != 1 {
		t.Fatalf("Shutdown: %+v %v, want 1 graceful, 1 forced, no error", res.rep, res.err)
	}
	advH2WaitConnections(t, r, 0)
}

// Many sockets on one connection exchange large messages at the same
// time, each its own bytes, while two others break the protocol (an
// unmasked frame: 1002; a frame announcing 1 TiB: 1009): every echo comes
// back whole and on its own stream, the offenders get their codes and
// their streams end, and the connection carries a new socket afterwards.
func TestH2CornerLargeMessagesInterleaveWhileOthersMisbehave(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, nil)
	dial := func() *h2test.Socket {
		s, _ := h2pDial(t, h, "/ws")
		t.Cleanup(s.CloseNow)
		return s
	}
	const sockets, rounds, size = 4, 3, 200 << 10
	var good []*h2test.Socket
	for range sockets {
		good = append(good, dial())
	}
	unmasked, huge := dial(), dial()

	errc := make(chan error, sockets+2)
	for i, s := range good {
		go func() {
			for round := range rounds {
				msg := bytes.Repeat([]byte{byte('a' + i), byte('0' + round)}, size/2)
				// Two fragments, the first larger than an HTTP/2 frame.
				if err := s.WriteFrame(ws.NewFrame(ws.OpBinary, false, msg[:size/3])); err != nil {
					errc <- err
					return
				}
				if err := s.WriteFrame(ws.NewFrame(ws.OpContinuation, true, msg[size/3:])); err != nil {
					errc <- err
					return
				}
				op, p, err := s.ReadMessage()
				if err != nil {
					errc <- fmt.Errorf("socket %d round %d: %w", i, round, err)
					return
				}
				if op != ws.OpBinary || !bytes.Equal(p, msg) {
					errc <- fmt.Errorf("socket %d round %d: got %v of %d bytes (%.8q), want its own %d", i, round, op, len(p), p, size)
					return
				}
			}
			errc <- nil
		}()
	}
	offend := func(s *h2test.Socket, raw []byte, want ws.StatusCode) {
		_ = s.WriteRaw(raw) // the server may end the stream first
		for {
			f, err := s.ReadFrame()
			if err != nil {
				errc <- fmt.Errorf("waiting for CLOSE %d: %w", want, err)
				return
			}
			if f.Header.OpCode == ws.OpClose {
				if code, _ := ws.ParseCloseFrameData(f.Payload); code != want {
					errc <- fmt.Errorf("CLOSE %d, want %d", code, want)
					return
				}
				errc <- s.AwaitEnd()
				return
			}
		}
	}
	var unmaskedFrame bytes.Buffer
	_ = ws.WriteFrame(&unmaskedFrame, ws.NewTextFrame([]byte("not masked")))
	hugeHeader := []byte{0x82, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4} // masked, 2^40 bytes
	go offend(unmasked, unmaskedFrame.Bytes(), ws.StatusProtocolError)
	go offend(huge, hugeHeader, ws.StatusMessageTooBig)

	deadline := time.After(10 * time.Second) // a guard; the exchange takes well under a second
	for range sockets + 2 {
		select {
		case err := <-errc:
			if err != nil {
				t.Error(err)
			}
		case <-deadline:
			t.Fatal("the exchange did not finish")
		}
	}
	if t.Failed() {
		return
	}
	advH2WaitConnections(t, r, sockets)
	late := dial()
	h2pEcho(t, late, "after the offenders")
	if n := h.client.Dials(); n != 1 {
		t.Fatalf("the client dialed %d connections, want 1", n)
	}
}

// The stream's transport reassembles WebSocket frames however DATA frames
// cut them: a message split into one-byte DATA frames, with empty and
// padded DATA frames among them, and fifty messages in one DATA frame,
// come back in order.
func TestH2CornerFramesAcrossDataFrameBoundaries(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, nil)
	c := h2cDial(t, h)
	c.open(1, h.addr, "/ws")

	text := "split " + string(bytes.Repeat([]byte("🐦"), 40))
	raw := advH2Frame(t, ws.NewTextFrame([]byte(text)))
	for i, b := range raw {
		var err error
		switch i % 3 {
		case 0:
			err = c.fr.WriteData(1, false, []byte{b})
		case 1:
			err = c.fr.WriteDataPadded(1, false, []byte{b}, make([]byte, 7))
		default:
			if err = c.fr.WriteData(1, false, nil); err == nil {
				err = c.fr.WriteData(1, false, []byte{b})
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if f, ok := c.next(1); !ok || f.Header.OpCode != ws.OpText || string(f.Payload) != text {
		t.Fatalf("split message echoed as %v %q", f.Header.OpCode, f.Payload)
	}

	var batch []byte
	for i := range 50 {
		batch = append(batch, advH2Frame(t, ws.NewTextFrame(fmt.Appendf(nil, "m%02d", i)))...)
	}
	if err := c.fr.WriteData(1, false, batch); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		f, ok := c.next(1)
		if want := fmt.Sprintf("m%02d", i); !ok || string(f.Payload) != want {
			t.Fatalf("message %d echoed as %q, want %q", i, f.Payload, want)
		}
	}
}

// handlers.md: ctx ends when "the transport failed" or "the context given
// to wsconn.Serve ... ended", and context.Cause(ctx) says which; wsconn's
// doc says HTTP/1.1 and HTTP/2 connections differ in nothing else than
// Conn.HTTP2. Served as ExampleAccept_http2 serves it (Accept, then Serve
// with the request's values but not its cancellation, as Accept's doc
// says), a peer that vanishes is a failed transport (1006) over HTTP/1.1;
// over HTTP/2, a client resetting its stream must be the same, not a
// server-side "going away" (the request's context ending).
func TestH2CornerPeerResetIsATransportFailure(t *testing.T) {
	causes := make(chan error, 2)
	opened := make(chan struct{}, 2)
	r := router.New()
	r.HandleFunc("/ws", func(w http.ResponseWriter, req *http.Request) {
		u, err := handshake.Accept(w, req, nil)
		if err != nil {
			return
		}
		_ = wsconn.Serve(context.WithoutCancel(req.Context()), u, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			opened <- struct{}{}
			for range in.Messages(0) {
			}
			causes <- context.Cause(ctx)
			return in.Err()
		}, &quiet)
	})
	h := h2pServe(t, r, nil)
	await := func(proto string) error {
		t.Helper()
		select {
		case err := <-causes:
			return err
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: the handler did not end after the peer left", proto)
			return nil
		}
	}

	// HTTP/1.1: the client's TCP connection closes.
	d := gorilla.Dialer{TLSClientConfig: &tls.Config{RootCAs: h.pool}, HandshakeTimeout: 5 * time.Second}
	c1, _, err := d.Dial("wss://"+h.addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-opened
	c1.NetConn().Close()
	if cause := await("HTTP/1.1"); wsconn.CloseStatus(cause) != 1006 {
		t.Fatalf("HTTP/1.1 reference: cause %v, want 1006", cause)
	}

	// HTTP/2: the client resets its stream.
	c := h2cDial(t, h)
	c.open(1, h.addr, "/ws")
	<-opened
	if err := c.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	if cause := await("HTTP/2"); wsconn.CloseStatus(cause) != 1006 {
		t.Fatalf("HTTP/2: the handler's ctx ended with %v after the client reset its stream, want a 1006 cause as over HTTP/1.1", cause)
	}
}

// connectFields sends an extended CONNECT with extra headers on stream id
// and returns the response's header fields as they were on the wire.
func (c *h2cConn) connectFields(id uint32, path string, extra ...[2]string) []hpack.HeaderField {
	c.t.Helper()
	c.hb.Reset()
	for _, f := range append([][2]string{
		{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"},
		{":path", path}, {":authority", c.conn.RemoteAddr().String()}, {"sec-websocket-version", "13"},
	}, extra...) {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hb.Bytes(), EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
	c.streams[id] = &h2cStream{}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			fields, err := c.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				c.t.Fatal(err)
			}
			if f.StreamID == id {
				return fields
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				c.t.Fatalf("stream %d reset: %v", id, f.ErrCode)
			}
		}
	}
}

// h2cForbidden are the fields RFC 9113 §8.2.2 forbids in an HTTP/2
// response (the connection-specific ones of RFC 9110 §7.6.1), and those
// RFC 9110 §9.3.6 forbids in a 2xx answer to CONNECT.
var h2cForbidden = []string{"connection", "proxy-connection", "keep-alive", "te", "transfer-encoding", "upgrade", "content-length"}

// docs/http2.md (Same negotiation): the 200 carries the negotiated
// subprotocol and permessage-deflate, what middleware and the decision
// set, and, on the wire, none of the connection-specific fields RFC 9113
// §8.2.2 forbids nor a Content-Length (RFC 9110 §9.3.6), however
// middleware and the decision spell them.
func TestH2CornerResponseFieldsOnTheWire(t *testing.T) {
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, Compression: wsconn.Compression{Enabled: true}}))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			h := w.Header()
			h["keep-alive"] = []string{"timeout=5"}
			h["Proxy-Connection"] = []string{"keep-alive"}
			h["transfer-encoding"] = []string{"trailers"}
			h.Set("Content-Length", "0")
			h.Set("X-Mw", "yes")
			next.ServeHTTP(w, req)
		})
	})
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(http.Header{"upgrade": {"websocket"}, "Keep-Alive": {"max=1"}, "X-Decision": {"yes"}})
	}, echo[struct{}], router.WithSubprotocols("b", "a"))
	h := h2pServe(t, r, nil)
	c := h2cDial(t, h)
	fields := c.connectFields(1, "/ws",
		[2]string{"sec-websocket-protocol", "a, b"},
		[2]string{"sec-websocket-extensions", "permessage-deflate"})
	got := map[string]string{}
	for _, f := range fields {
		got[f.Name] = f.Value
		for _, bad := range h2cForbidden {
			if f.Name == bad {
				t.Errorf("the 200 carries %s: %q", f.Name, f.Value)
			}
		}
	}
	if got[":status"] != "200" || got["x-mw"] != "yes" || got["x-decision"] != "yes" ||
		got["sec-websocket-protocol"] != "a" || !strings.HasPrefix(got["sec-websocket-extensions"], "permessage-deflate") {
		t.Fatalf("the 200's fields: %v", fields)
	}
	if _, ok := got["sec-websocket-accept"]; ok {
		t.Fatalf("the 200 carries Sec-WebSocket-Accept: %v", fields)
	}
	c.echoOn(1, "plain frames still echo") // under 1024 bytes: not compressed
}

// RFC 9113 §8.2.2 lists TE among the connection-specific fields an HTTP/2
// response must not carry (only a request may, with "trailers"), and
// handshake's connectionHeaders says it removes them from the 200.
func TestH2CornerResponseDropsTE(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("TE", "trailers")
			next.ServeHTTP(w, req)
		})
	})
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, nil)
	c := h2cDial(t, h)
	for _, f := range c.connectFields(1, "/ws") {
		if f.Name == "te" {
			t.Fatalf("the 200 carries te: %q (RFC 9113 §8.2.2)", f.Value)
		}
	}
}

// docs/http2.md (The transport, Trade-offs): a client that stops reading
// one socket stalls only that stream. While its write waits for credit,
// another socket on the connection keeps exchanging; after WriteTimeout
// the stalled stream alone is reset (RST_STREAM INTERNAL_ERROR) and its
// write fails with ErrWriteTimeout.
func TestH2CornerStalledStreamResetAloneOthersFlowMeanwhile(t *testing.T) {
	const writeTimeout = 400 * time.Millisecond
	failed := make(chan [2]error, 2)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: writeTimeout}))
	router.WS(r, "/ws", nil, h2cFlood(failed))
	h := h2pServe(t, r, nil)
	c := h2cDial(t, h)
	c.open(1, h.addr, "/ws")
	c.open(3, h.addr, "/ws")
	c.stallUntilBlocked(1)
	stalled := time.Now()
	for i := 0; time.Since(stalled) < writeTimeout/2; i++ {
		c.echoOn(3, fmt.Sprint("during the stall ", i))
	}
	if d := time.Since(stalled); c.streams[1].reset && d < writeTimeout*9/10 {
		t.Fatalf("the stalled stream was reset by %v after its write blocked, before WriteTimeout (%v)", d, writeTimeout)
	}
	c.until(1, func(s *h2cStream) bool { return s.reset })
	if d := time.Since(stalled); d > writeTimeout+1500*time.Millisecond {
		t.Fatalf("the stalled stream was reset %v after its write blocked, WriteTimeout %v", d, writeTimeout)
	}
	if code := c.streams[1].code; code != http2.ErrCodeInternal {
		t.Fatalf("the stalled stream was reset with %v, want INTERNAL_ERROR", code)
	}
	if res := <-failed; !errors.Is(res[0], wsconn.ErrWriteTimeout) {
		t.Fatalf("write error %v, want ErrWriteTimeout", res[0])
	}
	c.echoOn(3, "after the reset")
	if c.streams[3].reset || c.streams[3].ended {
		t.Fatal("the healthy stream ended")
	}
	advH2WaitConnections(t, r, 1)
}

// closing.md (What Inbound.Err returns, Sentinel errors) and handlers.md
// (Writing): a write that waited longer than WriteTimeout fails the
// connection with a 1006 "write failed" wrapping ErrWriteTimeout, which
// becomes the cause of the handler's context and of every later write's
// error, as over TCP. Over HTTP/2 the reset that ends the stalled write
// also ends the stream's request body, and the reader must not get to
// report a "read failed" first. Twelve stalled sockets on one connection,
// so that the race shows at once.
func TestH2CornerWriteTimeoutIsTheCauseNotAReadFailure(t *testing.T) {
	const n = 12
	failed := make(chan [2]error, n)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, WriteTimeout: 300 * time.Millisecond}))
	router.WS(r, "/ws", nil, h2cFlood(failed))
	h := h2pServe(t, r, nil)
	c := h2cDial(t, h)
	for i := range uint32(n) {
		c.open(2*i+1, h.addr, "/ws")
		c.stallUntilBlocked(2*i + 1)
	}
	bad := 0
	for range n {
		var res [2]error
		select {
		case res = <-failed:
		case <-time.After(3 * time.Second):
			t.Fatal("a stalled write did not time out")
		}
		if !errors.Is(res[0], wsconn.ErrWriteTimeout) {
			t.Errorf("write error %v, want ErrWriteTimeout", res[0])
		}
		if !errors.Is(res[1], wsconn.ErrWriteTimeout) {
			bad++
			t.Logf("the handler's context ended with %v, not a write timeout", res[1])
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d write timeouts were reported as another failure (context cause)", bad, n)
	}
}
