package router_test

// Adversarial tests of WebSockets over HTTP/2 (RFC 8441, docs/http2.md):
// edge cases of the extended CONNECT and of the stream's life that the
// promises files do not reach. They reuse the helpers of
// promises_h2_test.go (h2pServe, h2pDialRaw, h2pConnect, ...).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"
	"golang.org/x/net/http2"

	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// advH2WaitConnections waits (bounded) until r counts want connections.
func advH2WaitConnections(t *testing.T, r *router.Router, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.Connections() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Connections() = %d, want %d", r.Connections(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// advH2LogLines parses the JSON log lines in s whose msg is "request".
func advH2LogLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// middleware.Log documents "upgrade": "accepted" (status 101, or 200 on
// HTTP/2) for a ws route's accepted upgrade. Through a real router, an
// accepted HTTP/1.1 upgrade is logged so; an accepted extended CONNECT
// must be too.
func TestAdvH2LogMarksAcceptedStreamUpgrade(t *testing.T) {
	logs := &testlog.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	r := router.New(router.WithConfig(quiet))
	r.Use(middleware.Log(logger))
	router.WS(r, "/ws", nil, echo[struct{}])
	h := h2pServe(t, r, nil)

	// HTTP/1.1 over the same TLS server, as the reference.
	d := gorilla.Dialer{TLSClientConfig: &tls.Config{RootCAs: h.pool}, HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial("wss://"+h.addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	s, _ := h2pDial(t, h, "/ws")
	defer s.CloseNow()
	h2pEcho(t, s, "logged")
	// Log writes its line when the chain returns, before the 200 goes out.
	lines := advH2LogLines(t, logs.String())
	if len(lines) != 2 {
		t.Fatalf("%d request lines, want 2:\n%s", len(lines), logs.String())
	}
	if lines[0]["upgrade"] != "accepted" || lines[0]["status"] != 101.0 {
		t.Fatalf("HTTP/1.1 line %v, want upgrade=accepted status=101", lines[0])
	}
	if lines[1]["upgrade"] != "accepted" || lines[1]["status"] != 200.0 {
		t.Fatalf("HTTP/2 line %v, want upgrade=accepted status=200 (middleware/log.go doc)", lines[1])
	}
}

// A CONNECT without :protocol is a plain (tunnel) CONNECT, no WebSocket:
// the ws route's handler must not run, the answer is an HTTP refusal, and
// the connection goes on carrying sockets.
func TestAdvH2ConnectWithoutProtocolIsNoSocket(t *testing.T) {
	var ran atomic.Int32
	var decided atomic.Int32
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		decided.Add(1)
		return struct{}{}, router.Upgrade(nil)
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		ran.Add(1)
		return echo(ctx, in, out, s)
	})
	h := h2pServe(t, r, nil)
	resp, body := h2pConnect(t, h.client, h.base+"/ws", "", http.Header{"Sec-Websocket-Version": {"13"}})
	if resp.StatusCode < 400 || resp.StatusCode > 499 {
		t.Fatalf("CONNECT without :protocol: %d %q, want a 4xx", resp.StatusCode, body)
	}
	if ran.Load() != 0 || decided.Load() != 0 {
		t.Fatalf("plain CONNECT reached the decision %d / handler %d times", decided.Load(), ran.Load())
	}
	if n := r.Connections(); n != 0 {
		t.Fatalf("Connections() = %d after a plain CONNECT", n)
	}
	s, _ := h2pDial(t, h, "/ws")
	defer s.CloseNow()
	h2pEcho(t, s, "after the plain CONNECT")
	if d := h.client.Dials(); d != 1 {
		t.Fatalf("client dialed %d connections, want 1", d)
	}
}

// advH2Shut is what a router's Shutdown returned.
type advH2Shut struct {
	rep router.ShutdownReport
	err error
}

// advH2Shutdown runs r.Shutdown with a timeout in the background and
// delivers its result.
func advH2Shutdown(r *router.Router, timeout time.Duration) <-chan advH2Shut {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	shutc := make(chan advH2Shut, 1)
	go func() {
		defer cancel()
		rep, err := r.Shutdown(ctx)
		shutc <- advH2Shut{rep, err}
	}()
	return shutc
}

// advH2Frame encodes one masked client frame.
func advH2Frame(t *testing.T, f ws.Frame) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := ws.WriteFrame(&b, ws.MaskFrame(f)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The client resets the stream (RST_STREAM CANCEL) in the middle of a
// fragmented message, in the middle of a frame: the handler's loop ends
// with a 1006 error (closing.md: the transport ended without a CLOSE),
// the handler returns, the socket stops counting, and the HTTP/2
// connection carries a new socket.
func TestAdvH2ClientResetsStreamMidMessage(t *testing.T) {
	errc := make(chan error, 4)
	var got atomic.Int32
	opened := make(chan struct{}, 4)
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		opened <- struct{}{}
		for range in.Messages(0) {
			got.Add(1)
		}
		errc <- in.Err()
		return in.Err()
	})
	h := h2pServe(t, r, nil)
	raw := h2pDialRaw(t, h.addr, h.pool)
	if status, rst := raw.connect(t, 1, h.addr, "/ws"); status != "200" {
		t.Fatalf("stream 1: status %q, RST %v", status, rst)
	}
	<-opened
	first := advH2Frame(t, ws.NewFrame(ws.OpText, false, []byte("first fragment, ")))
	second := advH2Frame(t, ws.NewFrame(ws.OpContinuation, true, bytes.Repeat([]byte("x"), 200)))
	if err := raw.fr.WriteData(1, false, append(first, second[:20]...)); err != nil {
		t.Fatal(err)
	}
	if err := raw.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if wsconn.CloseStatus(err) != 1006 {
			t.Fatalf("in.Err() after RST_STREAM: %v (code %d), want a 1006 *CloseError", err, wsconn.CloseStatus(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's loop did not end after the client reset the stream")
	}
	if n := got.Load(); n != 0 {
		t.Fatalf("%d messages delivered from a reset stream", n)
	}
	advH2WaitConnections(t, r, 0)

	if status, rst := raw.connect(t, 3, h.addr, "/ws"); status != "200" {
		t.Fatalf("stream 3 after the reset: status %q, RST %v", status, rst)
	}
	<-opened
	advH2WaitConnections(t, r, 1)
	if err := raw.fr.WriteRSTStream(3, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("stream 3's handler did not end after its reset")
	}
	advH2WaitConnections(t, r, 0)
}

// advH2ReadUntilClose reads the server's DATA on stream id and parses it
// as WebSocket frames, synchronously, until a CLOSE; it returns the frames
// before the CLOSE, the CLOSE's code, and whether the DATA frame that
// completed the CLOSE also ended the stream.
func advH2ReadUntilClose(t *testing.T, raw *h2pRaw, id uint32) (frames []ws.Frame, code ws.StatusCode, ended bool) {
	t.Helper()
	var buf []byte
	for {
		f, err := raw.fr.ReadFrame()
		if err != nil {
			t.Fatalf("stream %d: %v before a CLOSE", id, err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			buf = append(buf, f.Data()...)
			for {
				br := bytes.NewReader(buf)
				hdr, err := ws.ReadHeader(br)
				if err != nil || int64(br.Len()) < hdr.Length {
					break // an incomplete frame: wait for more DATA
				}
				wf := ws.Frame{Header: hdr, Payload: make([]byte, hdr.Length)}
				_, _ = io.ReadFull(br, wf.Payload)
				buf = buf[len(buf)-br.Len():]
				if wf.Header.OpCode == ws.OpClose {
					code, _ = ws.ParseCloseFrameData(wf.Payload)
					return frames, code, f.StreamEnded()
				}
				frames = append(frames, wf)
			}
			if f.StreamEnded() {
				t.Fatalf("stream %d ended before a CLOSE", id)
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				t.Fatalf("stream %d reset (%v) before a CLOSE", id, f.ErrCode)
			}
		}
	}
}

// closing.md: "the peer stopped sending without a CLOSE (end of its
// stream, a half-close)" closes with 1000. Over HTTP/2 the half-close is
// END_STREAM on the request; the server must still send its CLOSE 1000
// on the response and end the stream.
func TestAdvH2HalfCloseGets1000(t *testing.T) {
	errc := make(chan error, 1)
	opened := make(chan struct{}, 1)
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		opened <- struct{}{}
		for range in.Messages(0) {
		}
		errc <- in.Err()
		return in.Err()
	})
	h := h2pServe(t, r, nil)
	raw := h2pDialRaw(t, h.addr, h.pool)
	if status, rst := raw.connect(t, 1, h.addr, "/ws"); status != "200" {
		t.Fatalf("status %q, RST %v", status, rst)
	}
	<-opened
	if err := raw.fr.WriteData(1, true, nil); err != nil {
		t.Fatal(err)
	}
	frames, code, _ := advH2ReadUntilClose(t, raw, 1)
	if code != ws.StatusNormalClosure || len(frames) != 0 {
		t.Fatalf("after END_STREAM: %d frames then CLOSE %d, want CLOSE 1000 alone", len(frames), code)
	}
	select {
	case err := <-errc:
		if wsconn.CloseStatus(err) != 1006 {
			t.Fatalf("in.Err() after a half-close: %v, want 1006", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler still ranging after the half-close")
	}
	advH2WaitConnections(t, r, 0)
}

// closing.md (Shutdown) over HTTP/2: a big message whose write is held
// back by HTTP/2 flow control when the shutdown begins is delivered whole
// before the 1001 if its write returned nil, and not at all otherwise;
// a message accepted before is delivered first either way.
func TestAdvH2ShutdownDeliversAcceptedMessagesBefore1001(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), (4<<20)/16)
	ready := make(chan struct{})
	bigErr := make(chan error, 1)
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		if err := out.WriteText(context.Background(), "small"); err != nil {
			return err
		}
		close(ready)
		bigErr <- out.WriteBinary(context.Background(), big)
		<-ctx.Done()
		return nil
	})
	h := h2pServe(t, r, nil)
	s, _ := h2pDial(t, h, "/ws")
	defer s.CloseNow()
	<-ready
	shutc := advH2Shutdown(r, 10*time.Second)
	var msgs [][]byte
	var closeCode ws.StatusCode
	for {
		_, p, err := s.ReadMessage() // answers the CLOSE
		var ce *h2test.CloseError
		if errors.As(err, &ce) {
			closeCode = ce.Code
			break
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", len(msgs), err)
		}
		msgs = append(msgs, p)
	}
	if closeCode != ws.StatusGoingAway {
		t.Fatalf("CLOSE %d, want 1001", closeCode)
	}
	if len(msgs) == 0 || string(msgs[0]) != "small" {
		t.Fatalf("the message accepted before the shutdown is missing: %d messages", len(msgs))
	}
	werr := <-bigErr
	t.Logf("big write: %v", werr)
	switch {
	case werr == nil:
		if len(msgs) != 2 || !bytes.Equal(msgs[1], big) {
			t.Fatalf("the big write returned nil but the peer got %d messages before the 1001", len(msgs))
		}
	default:
		if !errors.Is(werr, wsconn.ErrClosed) || len(msgs) != 1 {
			t.Fatalf("big write failed with %v, %d messages delivered; want ErrClosed and only the small one", werr, len(msgs))
		}
	}
	res := <-shutc
	if res.err != nil || res.rep.Graceful != 1 || res.rep.Forced != 0 {
		t.Fatalf("Shutdown: %+v %v, want 1 graceful", res.rep, res.err)
	}
}

// A peer that never answers the 1001 over HTTP/2 is counted as forced at
// the shutdown's deadline, its stream is ended, and the router's Shutdown
// returns without ErrShutdownIncomplete: the handler returns once the
// stream is closed.
func TestAdvH2SilentPeerAtShutdownIsForced(t *testing.T) {
	handlerDone := make(chan struct{})
	opened := make(chan struct{})
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet.Logger, CloseTimeout: time.Minute}))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		defer close(handlerDone)
		close(opened)
		<-ctx.Done()
		return nil
	})
	h := h2pServe(t, r, nil)
	raw := h2pDialRaw(t, h.addr, h.pool)
	if status, rst := raw.connect(t, 1, h.addr, "/ws"); status != "200" {
		t.Fatalf("status %q, RST %v", status, rst)
	}
	<-opened
	shutc := advH2Shutdown(r, 300*time.Millisecond)
	_, code, ended := advH2ReadUntilClose(t, raw, 1)
	if code != ws.StatusGoingAway {
		t.Fatalf("CLOSE %d, want 1001", code)
	}
	// Never answer. The stream must end (END_STREAM or RST_STREAM) once
	// the deadline passes.
	for !ended {
		f, err := raw.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for the stream to end: %v", err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			ended = f.StreamID == 1 && f.StreamEnded()
		case *http2.RSTStreamFrame:
			ended = f.StreamID == 1
		}
	}
	var res advH2Shut
	select {
	case res = <-shutc:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if res.err != nil || res.rep.Forced != 1 || res.rep.Graceful != 0 {
		t.Fatalf("Shutdown: %+v %v, want 1 forced and no error", res.rep, res.err)
	}
	<-handlerDone
	advH2WaitConnections(t, r, 0)
}
