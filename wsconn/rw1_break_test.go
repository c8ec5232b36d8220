package wsconn_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvrw1NextLoop ranges with the named iterator ("Messages", "Frames",
// "Readers") until one whole message has come, and returns it.
func rvrw1NextLoop(in *wsconn.Inbound, loop string) string {
	var b []byte
	switch loop {
	case "Messages":
		for m := range in.Messages(0) {
			b = append(b, m.Payload...)
			break
		}
	case "Frames":
		for f := range in.Frames() {
			b = append(b, f.Payload...)
			if f.Fin {
				break
			}
		}
	default:
		for _, r := range in.Readers() {
			p, _ := io.ReadAll(r)
			b = append(b, p...)
			break
		}
	}
	return string(b)
}

// docs/handlers.md: when a Readers body "breaks out (or returns), the
// loop ends at once and a next loop, if one comes, discards the rest".
// The body reads the head of a fragmented message and breaks before the
// rest has arrived; the rest then comes in fragments with PINGs between
// them, compressed (one deflate stream across messages: the peer's
// context takeover) or not. Every kind of next loop must yield the next
// message whole, the PINGs must be answered, and Err must stay nil until
// the peer's CLOSE.
func TestReadersBreakThenEveryLoopWithPingsAndCompression(t *testing.T) {
	cfg := func(on bool) wsconn.Config {
		c := wsconn.Config{PingInterval: -1}
		if on {
			c.Compression = wsconn.Compression{Enabled: true, ContextTakeover: true}
		}
		return c
	}
	type report struct {
		head, next string
		errs       string
	}
	reports := make(chan report, 1)
	handler := func(loop string) wsconn.Handler[struct{}] {
		return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			var r report
			for _, rd := range in.Readers() {
				b := make([]byte, 4)
				n, _ := io.ReadFull(rd, b)
				r.head = string(b[:n])
				break
			}
			r.errs = fmt.Sprint(in.Err())
			if err := out.WriteText(ctx, "broke", wsconn.Uncompressed); err != nil {
				return err
			}
			r.next = rvrw1NextLoop(in, loop)
			r.errs += fmt.Sprint(" ", in.Err())
			for range in.Messages(0) {
			}
			r.errs += fmt.Sprint(" ", in.Err())
			reports <- r
			return in.Err()
		}
	}
	var routes []cmpRoute
	for _, on := range []bool{false, true} {
		for _, loop := range []string{"Messages", "Frames", "Readers"} {
			routes = append(routes, cmpRoute{path: fmt.Sprintf("/%v/%s", on, loop), cfg: cfg(on), h: handler(loop)})
		}
	}
	url := cmpServe(t, routes...)
	first := string(cmpLetters(1, 200000)) // compresses only to about 5/8: a third inflates past the 32 KiB window
	second := strings.Repeat("second message, whole; ", 50)
	for _, on := range []bool{false, true} {
		for _, loop := range []string{"Messages", "Frames", "Readers"} {
			t.Run(fmt.Sprintf("compressed=%v/%s", on, loop), func(t *testing.T) {
				var c *cmpRaw
				if on {
					c = cmpDial(t, url+fmt.Sprintf("/%v/%s", on, loop), "permessage-deflate")
					if !strings.HasPrefix(c.answer(), "permessage-deflate") || strings.Contains(c.answer(), "client_no_context_takeover") {
						t.Fatalf("negotiated %q", c.answer())
					}
				} else {
					c = cmpDial(t, url+fmt.Sprintf("/%v/%s", on, loop))
				}
				d := newCmpDeflater()
				p1, p2 := []byte(first), []byte(second)
				var rsv byte
				if on {
					p1, p2, rsv = d.message(p1), d.message(p2), frames.Rsv1
				}
				k := len(p1) / 3
				c.send(frames.OpText, false, rsv, p1[:k])
				if h, p := c.readMessage(); h.Op != frames.OpText || string(p) != "broke" {
					t.Fatalf("got %v %q, want the handler's text after the break", h.Op, p)
				}
				c.send(frames.OpPing, true, 0, []byte("p1"))
				c.send(frames.OpContinuation, false, 0, p1[k:2*k])
				c.send(frames.OpPing, true, 0, []byte("p2"))
				c.send(frames.OpContinuation, true, 0, p1[2*k:])
				c.send(frames.OpText, false, rsv, p2[:10])
				c.send(frames.OpPing, true, 0, []byte("p3"))
				c.send(frames.OpContinuation, true, 0, p2[10:])
				for _, want := range []string{"p1", "p2", "p3"} {
					h, p := c.read()
					if h.Op != frames.OpPong || string(p) != want {
						t.Fatalf("got %v %q, want the PONG %q", h.Op, p, want)
					}
				}
				c.closeNormally()
				r := waitFor(t, reports, "the handler")
				if r.head != first[:4] || r.next != second || r.errs != "<nil> <nil> <nil>" {
					t.Errorf("head %q, next %d bytes (want %d, same %v), errs %q", r.head, len(r.next), len(second), r.next == second, r.errs)
				}
			})
		}
	}
}

// The same break while the peer never stops: a Readers body reads the
// head of a message whose fragments keep coming, breaks, and the
// handler returns nil. The handler returns at once; colibri's CLOSE
// (1000) goes out, and since the peer never answers, Serve is over
// within CloseTimeout (plus the short linger), not after the message.
func TestReadersBreakThenReturnWhilePeerStreams(t *testing.T) {
	const closeTimeout = 300 * time.Millisecond
	returned := make(chan time.Time, 1)
	url, served := rvIterServe(t, &wsconn.Config{PingInterval: -1, CloseTimeout: closeTimeout}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for _, r := range in.Readers() {
			_, _ = io.ReadFull(r, make([]byte, 100))
			break
		}
		returned <- time.Now()
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpBinary, false, make([]byte, 1000))
	tick := maskedFrame(frames.Header{Op: frames.OpContinuation}, make([]byte, 4096))
	stop := make(chan struct{})
	writing := c.writeEvery(time.Millisecond, tick, stop)
	defer func() {
		close(stop)
		<-writing
	}()
	at := waitWithin(t, returned, 2*time.Second, "the handler to return")
	c.expectClose(frames.CloseNormal)
	waitWithin(t, served, 2*time.Second, "Serve to return")
	if d := time.Since(at); d > closeTimeout+time.Second {
		t.Errorf("Serve returned %v after the handler, want about CloseTimeout (%v)", d, closeTimeout)
	}
}

// closing.md: behind a bad header "the header's 1002 goes out at once";
// the Inbound godoc: "Once the handler's context has ended, a new loop
// yields nothing". A busy Messages body sees its context end and breaks
// out instead of reading on: Err is nil (the body broke out), and a loop
// begun afterwards yields nothing, not even the message kept before the
// violation, and reports the 1002.
func TestBusyBodyBreaksAfterViolationBehindKeptData(t *testing.T) {
	type report struct {
		first   error
		yielded int
		second  error
	}
	reports := make(chan report, 1)
	busy := make(chan struct{})
	url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var r report
		for range in.Messages(0) {
			close(busy)
			<-ctx.Done()
			break
		}
		r.first = in.Err()
		for range in.Messages(0) {
			r.yielded++
		}
		r.second = in.Err()
		reports <- r
		return in.Err()
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("a"))
	waitFor(t, busy, "the body")
	c.write(append(maskedFrame(frames.Header{Op: frames.OpText, Fin: true}, []byte("kept")),
		maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv2}, []byte("x"))...))
	c.expectClose(frames.CloseProtocolError)
	r := waitFor(t, reports, "the handler")
	if r.first != nil || r.yielded != 0 || wsconn.CloseStatus(r.second) != frames.CloseProtocolError {
		t.Errorf("after the break Err %v; a later loop yielded %d, Err %v; want nil, 0, 1002", r.first, r.yielded, r.second)
	}
}

// The same violation behind data kept for a busy body, with compression
// on and the peer's context takeover: the kept compressed message is
// yielded, inflated with the window the first one left, then the loop
// ends with the 1002 that went out at once.
func TestViolationBehindKeptCompressedData(t *testing.T) {
	got := make(chan string, 1)
	url := cmpServe(t, cmpRoute{path: "/", cfg: wsconn.Config{PingInterval: -1, Compression: wsconn.Compression{Enabled: true, ContextTakeover: true}},
		h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			var texts []string
			for m := range in.Messages(0) {
				texts = append(texts, m.Text())
				if len(texts) == 1 {
					<-ctx.Done() // busy until the violation ends the context
				}
			}
			got <- fmt.Sprintf("%q %v", texts, int(wsconn.CloseStatus(in.Err())))
			return in.Err()
		}})
	c := cmpDial(t, url+"/", "permessage-deflate")
	if strings.Contains(c.answer(), "client_no_context_takeover") {
		t.Fatalf("negotiated %q", c.answer())
	}
	d := newCmpDeflater()
	one := strings.Repeat("compressible text ", 20)
	c.send(frames.OpText, true, frames.Rsv1, d.message([]byte(one)))
	time.Sleep(60 * time.Millisecond) // the body is busy, the background reader reads
	b := maskedFrame(frames.Header{Op: frames.OpText, Fin: true, Rsv: frames.Rsv1}, d.message([]byte(one+"again")))
	b = append(b, maskedFrame(frames.Header{Op: frames.OpPing, Fin: true}, []byte("p"))...)
	b = append(b, maskedFrame(frames.Header{Op: frames.Opcode(3), Fin: true}, nil)...)
	c.write(b)
	if h, p := c.read(); h.Op != frames.OpPong || string(p) != "p" {
		t.Fatalf("got %v %q, want the PONG", h.Op, p)
	}
	c.expectClose(frames.CloseProtocolError)
	want := fmt.Sprintf("%q 1002", []string{one, one + "again"})
	if s := waitFor(t, got, "the loop"); s != want {
		t.Errorf("the loop: %s, want %s", s, want)
	}
}

// A CLOSE and a bad header in one read, behind data kept for a busy
// body: whichever comes first decides. CLOSE first: what follows it is
// dropped (RFC 6455 §5.5.1), the peer's code is echoed, the kept message
// is yielded and Err carries the peer's code. Bad header first: 1002,
// the kept message is yielded, Err is the 1002.
func TestCloseAndBadHeaderInOneRead(t *testing.T) {
	for _, closeFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("closeFirst=%v", closeFirst), func(t *testing.T) {
			got := make(chan string, 1)
			busy := make(chan struct{})
			l := newEventLog()
			url, _ := testServer(t, &wsconn.Config{PingInterval: -1, Observer: l, CloseTimeout: 300 * time.Millisecond}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				var texts []string
				for m := range in.Messages(0) {
					texts = append(texts, m.Text())
					if len(texts) == 1 {
						close(busy)
						<-ctx.Done()
					}
				}
				got <- fmt.Sprintf("%q %v", texts, int(wsconn.CloseStatus(in.Err())))
				return in.Err()
			})
			c := dialRaw(t, url)
			c.frame(frames.OpText, true, []byte("a"))
			waitFor(t, busy, "the body")
			closeFrame := maskedFrame(frames.Header{Op: frames.OpClose, Fin: true}, closePayload(4001, "bye"))
			bad := maskedFrame(frames.Header{Op: frames.OpText, Fin: false, Rsv: frames.Rsv3}, []byte("x"))
			b := maskedFrame(frames.Header{Op: frames.OpText, Fin: true}, []byte("kept"))
			if closeFirst {
				b = append(append(b, closeFrame...), bad...)
			} else {
				b = append(append(b, bad...), closeFrame...)
			}
			c.write(b)
			want := frames.CloseCode(4001)
			if !closeFirst {
				want = frames.CloseProtocolError
			}
			c.expectClose(want)
			if s, w := waitFor(t, got, "the loop"), fmt.Sprintf("%q %d", []string{"a", "kept"}, want); s != w {
				t.Errorf("the loop: %s, want %s", s, w)
			}
			c.expectEOF()
			if info, _ := l.wait(t); info.Code != want {
				t.Errorf("CloseInfo code %d, want %d", info.Code, want)
			}
		})
	}
}

// docs/closing.md, keep-alive: the timeouts strike "while colibri is
// waiting on the socket (a loop, or the background reader)". A Readers
// body is busy in the middle of a message (its frame not yet read to the
// end, the rest of it small): the background reader waits behind it, so
// a silent peer is caught by the ping timeout or the idle timeout, and
// the busy body sees its context end; a chatty peer (PINGs, and PONGs for
// colibri's PINGs, no data) is kept by keep-alive while the body is busy
// for several PongTimeouts, and its message then arrives whole.
func TestTimersWhileReadersBodyIsBusyMidFrame(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    wsconn.Config
		chatty bool
		want   error // nil: the connection stays
	}{
		{"silent/ping", wsconn.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 100 * time.Millisecond}, false, wsconn.ErrPingTimeout},
		{"silent/idle", wsconn.Config{PingInterval: -1, IdleTimeout: 200 * time.Millisecond}, false, wsconn.ErrIdleTimeout},
		{"chatty/idle", wsconn.Config{PingInterval: -1, IdleTimeout: 200 * time.Millisecond}, true, wsconn.ErrIdleTimeout},
		{"chatty/ping", wsconn.Config{PingInterval: 50 * time.Millisecond, PongTimeout: 50 * time.Millisecond}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type report struct {
				cause error
				msg   string
			}
			reports := make(chan report, 1)
			resume := make(chan struct{})
			cfg := tc.cfg
			cfg.CloseTimeout = 300 * time.Millisecond
			url, _ := testServer(t, &cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				var r report
				for _, rd := range in.Readers() {
					head := make([]byte, 10)
					_, _ = io.ReadFull(rd, head)
					select {
					case <-ctx.Done():
					case <-resume:
					}
					rest, _ := io.ReadAll(rd)
					r.msg = string(head) + string(rest)
					break
				}
				r.cause = context.Cause(ctx)
				reports <- r
				return nil
			})
			c := dialRaw(t, url)
			msg := strings.Repeat("0123456789", 10)
			c.frame(frames.OpText, false, []byte(msg[:50]))
			if !tc.chatty {
				if tc.want == nil {
					t.Fatal("a silent peer is always given up on")
				}
				r := waitFor(t, reports, "the handler")
				if !errors.Is(r.cause, tc.want) {
					t.Fatalf("the busy body's context: %v, want %v", r.cause, tc.want)
				}
				c.expectClose(frames.CloseGoingAway)
				return
			}
			// The chatty peer: a PING every 10 ms, and every PING of
			// colibri's answered, for 400 ms or until colibri closes.
			closed := make(chan frames.CloseCode, 1)
			go func() {
				for {
					h, p, err := readFrame(c.br)
					if err != nil {
						closed <- 0
						return
					}
					switch h.Op {
					case frames.OpPing:
						_, _ = c.nc.Write(maskedFrame(frames.Header{Op: frames.OpPong, Fin: true}, p))
					case frames.OpClose:
						code, _, _ := frames.ParseClose(p)
						closed <- code
						return
					}
				}
			}()
			_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			stop := make(chan struct{})
			pinging := c.writeEvery(10*time.Millisecond, maskedFrame(frames.Header{Op: frames.OpPing, Fin: true}, []byte("hi")), stop)
			select {
			case code := <-closed:
				close(stop)
				<-pinging
				if tc.want == nil {
					t.Fatalf("colibri closed (%d) a peer that answers every PING while the body was busy", code)
				}
				if code != frames.CloseGoingAway {
					t.Fatalf("close code %d, want 1001", code)
				}
				if r := waitFor(t, reports, "the handler"); !errors.Is(r.cause, tc.want) {
					t.Fatalf("the busy body's context: %v, want %v", r.cause, tc.want)
				}
				return
			case <-time.After(400 * time.Millisecond):
			}
			close(stop)
			<-pinging
			if tc.want != nil {
				t.Fatalf("no close within 400 ms, want %v", tc.want)
			}
			close(resume)
			c.frame(frames.OpContinuation, true, []byte(msg[50:]))
			r := waitFor(t, reports, "the handler")
			if r.msg != msg || r.cause != nil {
				t.Fatalf("the body read %q (context %v), want the whole message with the connection open", r.msg, r.cause)
			}
			if code := waitFor(t, closed, "the handler's close"); code != frames.CloseNormal {
				t.Fatalf("close code %d after the handler returned, want 1000", code)
			}
		})
	}
}
