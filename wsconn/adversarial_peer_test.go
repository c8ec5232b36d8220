package wsconn_test

// Adversarial peers against the server side of the connection core, over
// loopback sockets with raw frames: what the other tests leave open about
// the background reader, control frames, the ends of a peer in the middle
// of a frame or of the closing handshake, a peer that never reads, and
// floods of tiny fragments.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// peerAdvHugeHeader is a masked binary frame header announcing 2^63-1 bytes.
var peerAdvHugeHeader = []byte{0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4}

// peerAdvMasked encodes one masked frame, for tests that send several frames
// in one write.
func peerAdvMasked(op frames.Opcode, fin bool, payload []byte) []byte {
	return maskedFrame(frames.Header{Op: op, Fin: fin, Mask: [4]byte{9, 8, 7, 6}}, payload)
}

// peerAdvCollect is a handler that waits for start (unless nil), then ranges
// over Messages, sending each payload on got, and reports in.Err.
func peerAdvCollect(start <-chan struct{}, got chan<- string, inErr chan<- error) handlerFunc {
	return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		if start != nil {
			select {
			case <-start:
			case <-ctx.Done():
				inErr <- context.Cause(ctx)
				return nil
			}
		}
		for m := range in.Messages(0) {
			if got != nil {
				got <- string(m.Payload)
			}
		}
		inErr <- in.Err()
		return in.Err()
	}
}

// A frame announcing 2^63-1 bytes, met by the background reader while the
// handler does not range (a write-only handler, or a busy loop body), must
// not crash the process. Without MaxFrameSize the loop that ranges later
// closes with 1009 before reading the payload, as it does when it meets
// the frame itself; over MaxFrameSize the header alone is a violation,
// and the background reader fails the connection with 1009 at once, even
// behind kept data (a loop may never come to judge it).
func TestPeerAdvHugeLengthMetByBackgroundReader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    wsconn.Config
		before []byte // data frames the background reader keeps first
		atOnce bool   // the background reader fails the connection
	}{
		{name: "at a frame boundary"},
		{name: "behind a kept frame, with MaxFrameSize", cfg: wsconn.Config{MaxFrameSize: 1000}, before: peerAdvMasked(frames.OpBinary, true, []byte("abc")), atOnce: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := make(chan struct{})
			got := make(chan string, 4)
			inErr := make(chan error, 1)
			cfg := tc.cfg
			cfg.PingInterval, cfg.PongTimeout = 100*time.Millisecond, -1
			url, _ := testServer(t, &cfg, peerAdvCollect(start, got, inErr))
			c := dialRaw(t, url)
			// A PING answered proves the background reader reads.
			c.frame(frames.OpPing, true, []byte("bg"))
			if h, p := c.read(); h.Op != frames.OpPong || string(p) != "bg" {
				t.Fatalf("got %v %q, want PONG bg", h.Op, p)
			}
			c.write(append(append([]byte(nil), tc.before...), peerAdvHugeHeader...))
			if tc.atOnce {
				c.expectClose(frames.CloseMessageTooBig)
				close(start)
			} else {
				// The next keep-alive PING leaves a tick later: by then the
				// background reader has met the header.
				if h, _ := c.read(); h.Op != frames.OpPing {
					t.Fatalf("got %v, want the keep-alive PING", h.Op)
				}
				close(start)
				c.expectClose(frames.CloseMessageTooBig)
			}
			// The loop's error, or the context's cause when the violation
			// came before the loop.
			err := waitFor(t, inErr, "the handler")
			if !errors.Is(err, messages.ErrTooLarge) || wsconn.CloseStatus(err) != frames.CloseMessageTooBig {
				t.Fatalf("error = %v, want ErrTooLarge with 1009", err)
			}
			select {
			case g := <-got:
				t.Fatalf("the loop got %q after the violation", g)
			default:
			}
		})
	}
}

// Frame-header and control-frame violations met by the background reader
// (the handler never ranges) get the same close codes as in a loop, and
// the handler's context ends with the violation as its cause.
func TestPeerAdvViolationsSeenByBackgroundReader(t *testing.T) {
	causes := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil
	})
	tests := []struct {
		name string
		send func(c *rawClient)
		code frames.CloseCode
		err  error
	}{
		{"64-bit length with the top bit set", func(c *rawClient) {
			c.write([]byte{0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4})
		}, 1002, frames.ErrLengthMSB},
		{"unmasked binary frame", func(c *rawClient) { c.write([]byte{0x82, 0x01, 'x'}) }, 1002, frames.ErrUnmasked},
		{"unmasked PING", func(c *rawClient) { c.write([]byte{0x89, 0x00}) }, 1002, frames.ErrUnmasked},
		{"reserved opcode", func(c *rawClient) { c.frame(0x7, true, nil) }, 1002, frames.ErrReservedOpcode},
		{"RSV1 without an extension", func(c *rawClient) { c.frameRsv(frames.OpBinary, true, frames.Rsv1, []byte("x")) }, 1002, frames.ErrReservedBits},
		{"CLOSE without FIN", func(c *rawClient) { c.frame(frames.OpClose, false, closePayload(1000, "")) }, 1002, frames.ErrFragmentedControl},
		{"PONG of 126 bytes", func(c *rawClient) { c.frame(frames.OpPong, true, make([]byte, 126)) }, 1002, frames.ErrControlTooLong},
		{"CLOSE of one byte", func(c *rawClient) { c.frame(frames.OpClose, true, []byte{0x03}) }, 1002, frames.ErrClosePayload},
		{"CLOSE with code 1005", func(c *rawClient) { c.frame(frames.OpClose, true, closePayload(1005, "")) }, 1002, frames.ErrInvalidCloseCode},
		{"CLOSE with a reason that is not UTF-8", func(c *rawClient) { c.frame(frames.OpClose, true, closePayload(1000, "a\xc0\xafb")) }, 1007, frames.ErrInvalidCloseReason},
		{"broken CLOSE behind a kept data frame", func(c *rawClient) {
			// The reader skips ahead over kept data to serve control
			// frames; a broken CLOSE found there is the peer's too.
			c.write(append(peerAdvMasked(frames.OpBinary, true, []byte("kept")), peerAdvMasked(frames.OpClose, true, []byte{0x03})...))
		}, 1002, frames.ErrClosePayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, url)
			tt.send(c)
			c.expectClose(tt.code)
			err := waitFor(t, causes, "the handler's context")
			if !errors.Is(err, tt.err) || wsconn.CloseStatus(err) != tt.code {
				t.Fatalf("context.Cause = %v, want %v with code %d", err, tt.err, tt.code)
			}
			c.expectEOF()
		})
	}
}

// Control-frame and sequencing violations the conformance table leaves
// out, through each of the three iterators.
func TestPeerAdvViolationsInEveryIterator(t *testing.T) {
	errc := make(chan error, 1)
	loops := map[string]handlerFunc{
		"Messages": func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			for range in.Messages(0) {
			}
			errc <- in.Err()
			return in.Err()
		},
		"Frames": func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			for range in.Frames() {
			}
			errc <- in.Err()
			return in.Err()
		},
		"Readers": func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			for _, r := range in.Readers() {
				if _, err := io.Copy(io.Discard, r); err != nil {
					break
				}
			}
			errc <- in.Err()
			return in.Err()
		},
	}
	tests := []struct {
		name string
		send func(c *rawClient)
		code frames.CloseCode
		err  error
	}{
		{"PONG without FIN", func(c *rawClient) { c.frame(frames.OpPong, false, nil) }, 1002, frames.ErrFragmentedControl},
		{"CLOSE without FIN", func(c *rawClient) { c.frame(frames.OpClose, false, closePayload(1000, "")) }, 1002, frames.ErrFragmentedControl},
		{"CLOSE of 126 bytes", func(c *rawClient) {
			c.frame(frames.OpClose, true, closePayload(1000, strings.Repeat("r", 124)))
		}, 1002, frames.ErrControlTooLong},
		{"PONG of 126 bytes", func(c *rawClient) { c.frame(frames.OpPong, true, make([]byte, 126)) }, 1002, frames.ErrControlTooLong},
		{"RSV1 on a CLOSE", func(c *rawClient) { c.frameRsv(frames.OpClose, true, frames.Rsv1, closePayload(1000, "")) }, 1002, frames.ErrReservedBits},
		{"RSV1 on a continuation without an extension", func(c *rawClient) {
			c.frame(frames.OpBinary, false, []byte("a"))
			c.frameRsv(frames.OpContinuation, true, frames.Rsv1, []byte("b"))
		}, 1002, frames.ErrReservedBits},
		{"unmasked CLOSE", func(c *rawClient) { c.write([]byte{0x88, 0x02, 0x03, 0xe8}) }, 1002, frames.ErrUnmasked},
		{"unmasked continuation inside a message", func(c *rawClient) {
			c.frame(frames.OpText, false, []byte("a"))
			c.write([]byte{0x80, 0x01, 'b'})
		}, 1002, frames.ErrUnmasked},
		{"64-bit length all ones", func(c *rawClient) {
			c.write([]byte{0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4})
		}, 1002, frames.ErrLengthMSB},
		{"continuation without a start", func(c *rawClient) { c.frame(frames.OpContinuation, false, []byte("x")) }, 1002, messages.ErrUnexpectedContinuation},
		{"continuation after a finished message", func(c *rawClient) {
			c.frame(frames.OpText, false, []byte("a"))
			c.frame(frames.OpContinuation, true, []byte("b"))
			c.frame(frames.OpContinuation, true, []byte("c"))
		}, 1002, messages.ErrUnexpectedContinuation},
		{"binary frame inside a text message", func(c *rawClient) {
			c.frame(frames.OpText, false, []byte("a"))
			c.frame(frames.OpBinary, true, []byte("b"))
		}, 1002, messages.ErrExpectedContinuation},
		{"empty binary start then a text frame", func(c *rawClient) {
			c.frame(frames.OpBinary, false, nil)
			c.frame(frames.OpPing, true, nil)
			c.frame(frames.OpText, true, []byte("b"))
		}, 1002, messages.ErrExpectedContinuation},
		{"overlong UTF-8 encoding", func(c *rawClient) { c.frame(frames.OpText, true, []byte("a\xc0\xafb")) }, 1007, messages.ErrInvalidUTF8},
		{"code point above U+10FFFF in a fragment", func(c *rawClient) {
			c.frame(frames.OpText, false, []byte("ok"))
			c.frame(frames.OpContinuation, false, []byte{0xf4, 0x90})
		}, 1007, messages.ErrInvalidUTF8},
	}
	for name, h := range loops {
		url, _ := testServer(t, nil, h)
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				c := dialRaw(t, url)
				tt.send(c)
				c.expectClose(tt.code)
				err := waitFor(t, errc, "the loop")
				if !errors.Is(err, tt.err) || wsconn.CloseStatus(err) != tt.code {
					t.Fatalf("in.Err() = %v, want %v with code %d", err, tt.err, tt.code)
				}
				c.expectEOF()
			})
		}
	}
}

// Invalid UTF-8 fails the connection as soon as the bad byte arrives, in
// the middle of a frame whose rest never comes (RFC 6455 §8.1), whichever
// iterator reads.
func TestPeerAdvInvalidUTF8FailsBeforeTheFrameEnds(t *testing.T) {
	errc := make(chan error, 1)
	for _, loop := range []string{"Messages", "Frames", "Readers"} {
		t.Run(loop, func(t *testing.T) {
			url, _ := testServer(t, &wsconn.Config{CloseTimeout: time.Minute}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				switch loop {
				case "Messages":
					for range in.Messages(0) {
					}
				case "Frames":
					for range in.Frames() {
					}
				case "Readers":
					for _, r := range in.Readers() {
						_, _ = io.Copy(io.Discard, r)
					}
				}
				errc <- in.Err()
				return in.Err()
			})
			c := dialRaw(t, url)
			// A text frame of 4000 bytes; 4 arrive, the last one bad.
			c.write([]byte{0x81, 0x80 | 126, 0x0F, 0xA0, 0, 0, 0, 0})
			c.write([]byte("ok \xff"))
			c.expectClose(frames.CloseInvalidPayload)
			if err := waitFor(t, errc, "the loop"); !errors.Is(err, messages.ErrInvalidUTF8) {
				t.Fatalf("in.Err() = %v, want ErrInvalidUTF8", err)
			}
		})
	}
}

// Lengths encoded in more bytes than needed are accepted, as frames
// documents for ParseHeader (RFC 6455 §5.2 binds the sender).
func TestPeerAdvNonMinimalLengthsAccepted(t *testing.T) {
	url, _ := testServer(t, nil, echo)
	c := dialRaw(t, url)
	for _, tc := range []struct {
		name   string
		header []byte
		n      int
	}{
		{"5 in 16 bits", []byte{0x81, 0x80 | 126, 0, 5}, 5},
		{"5 in 64 bits", []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5}, 5},
		{"300 in 64 bits", []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0x01, 0x2C}, 300},
		{"0 in 16 bits", []byte{0x81, 0x80 | 126, 0, 0}, 0},
	} {
		payload := []byte(strings.Repeat("z", tc.n))
		frame := append(append([]byte(nil), tc.header...), 0, 0, 0, 0) // zero mask
		c.write(append(frame, payload...))
		h, p := c.read()
		if h.Op != frames.OpText || !bytes.Equal(p, payload) {
			t.Fatalf("%s: echo %v of %d bytes, want text of %d", tc.name, h.Op, len(p), tc.n)
		}
	}
	c.frame(frames.OpClose, true, closePayload(1000, ""))
	c.expectClose(1000)
}

// After the peer's CLOSE nothing it sends counts: no message reaches the
// handler, garbage is no violation, the echo carries the peer's code and
// reason, and the server closes TCP.
func TestPeerAdvPeerDataAfterItsCloseIsIgnored(t *testing.T) {
	got := make(chan string, 4)
	inErr := make(chan error, 1)
	url, _ := testServer(t, nil, peerAdvCollect(nil, got, inErr))
	c := dialRaw(t, url)
	var b []byte
	b = append(b, peerAdvMasked(frames.OpText, true, []byte("before"))...)
	b = append(b, peerAdvMasked(frames.OpClose, true, closePayload(4001, "bye"))...)
	b = append(b, peerAdvMasked(frames.OpText, true, []byte("after"))...)
	b = append(b, 0x83, 0x00, 0xff, 0xff) // reserved opcode, unmasked
	c.write(b)
	if reason := c.expectClose(4001); reason != "bye" {
		t.Fatalf("echoed reason %q", reason)
	}
	err := waitFor(t, inErr, "the loop")
	if wsconn.CloseStatus(err) != 4001 || errors.Is(err, frames.ErrReservedOpcode) {
		t.Fatalf("in.Err() = %v, want the peer's 4001", err)
	}
	close(got)
	var all []string
	for m := range got {
		all = append(all, m)
	}
	if len(all) != 1 || all[0] != "before" {
		t.Fatalf("handler got %q, want only \"before\"", all)
	}
}

// A peer that stops sending (a half-close) anywhere inside a frame or a
// message gets 1000 with no reason, and the loop reports 1006 wrapping
// io.EOF (docs/closing.md).
func TestPeerAdvPeerStopsMidFrame(t *testing.T) {
	inErr := make(chan error, 1)
	url, _ := testServer(t, nil, peerAdvCollect(nil, nil, inErr))
	curl, _ := testServerAccept(t, compressed(wsconn.Config{}), peerAdvCollect(nil, nil, inErr))
	z := cmpCompress([]byte(strings.Repeat("compressible ", 200)))
	tests := []struct {
		name     string
		compress bool
		send     []byte
	}{
		{"after the first header byte", false, []byte{0x82}},
		{"inside the 16-bit length", false, []byte{0x82, 0x80 | 126, 0x01}},
		{"inside the 64-bit length", false, []byte{0x82, 0x80 | 127, 0, 0, 0, 0}},
		{"inside the masking key", false, []byte{0x82, 0x85, 1, 2}},
		{"inside the payload", false, []byte{0x82, 0x85, 0, 0, 0, 0, 'a', 'b'}},
		{"between the fragments of a message", false, peerAdvMasked(frames.OpText, false, []byte("half"))},
		{"inside a PING", false, []byte{0x89, 0x85, 0, 0, 0, 0, 'p'}},
		{"inside a CLOSE", false, []byte{0x88, 0x82, 0, 0, 0, 0, 0x03}},
		{"inside a compressed message", true, append([]byte{0xC1, 0x80 | 126, byte(len(z) >> 8), byte(len(z)), 0, 0, 0, 0}, z[:len(z)/2]...)},
		{"between compressed fragments", true, func() []byte {
			f := peerAdvMasked(frames.OpText, false, z[:len(z)/2])
			f[0] |= 0x40
			return f
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *rawClient
			if tt.compress {
				c = dialRawExt(t, curl, "permessage-deflate")
			} else {
				c = dialRaw(t, url)
			}
			c.write(tt.send)
			if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if p := c.readClosePayload(); !bytes.Equal(p, closePayload(1000, "")) {
				t.Fatalf("CLOSE payload % x, want 1000 with no reason", p)
			}
			c.expectSilentEOF()
			err := waitFor(t, inErr, "the loop")
			if ce, ok := errors.AsType[*wsconn.CloseError](err); !ok || ce.Code != frames.CloseAbnormal || !errors.Is(err, io.EOF) {
				t.Fatalf("in.Err() = %v, want a 1006 *CloseError wrapping io.EOF", err)
			}
		})
	}
}

// A peer whose connection is reset in the middle of a frame: no CLOSE can
// go out, the loop reports 1006 wrapping the reset, and the connection
// ends.
func TestPeerAdvPeerResetMidPayload(t *testing.T) {
	inErr := make(chan error, 1)
	l := newEventLog()
	url, _ := testServer(t, &wsconn.Config{Observer: l}, peerAdvCollect(nil, nil, inErr))
	c := dialRaw(t, url)
	c.write([]byte{0x82, 0x80 | 126, 0x10, 0x00, 0, 0, 0, 0, 'a', 'b'})
	c.frame(frames.OpPing, true, nil) // inside the payload: just bytes
	tc := c.nc.(*net.TCPConn)
	_ = tc.SetLinger(0)
	_ = tc.Close()
	err := waitFor(t, inErr, "the loop")
	if wsconn.CloseStatus(err) != frames.CloseAbnormal || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("in.Err() = %v, want 1006 wrapping ECONNRESET", err)
	}
	info, _ := l.wait(t)
	if info.Code != frames.CloseAbnormal || info.By != wsconn.SidePeer {
		t.Fatalf("closed with %v by %v, want 1006 by the peer", info.Code, info.By)
	}
}

// A peer that vanishes during the closing handshake (after reading the
// server's CLOSE, or halfway through its own) does not hold the connection
// for CloseTimeout: it ends as soon as the transport does.
func TestPeerAdvPeerVanishesDuringClosingHandshake(t *testing.T) {
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"without answering", nil},
		{"halfway through its CLOSE", []byte{0x88, 0x82, 0, 0}},
		{"inside a data frame", []byte{0x82, 0x90, 0, 0, 0, 0, 'x'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newEventLog()
			url, _ := testServer(t, &wsconn.Config{CloseTimeout: time.Minute, Observer: l}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				return nil
			})
			c := dialRaw(t, url)
			c.expectClose(1000)
			start := time.Now()
			if tc.send != nil {
				c.write(tc.send)
			}
			c.nc.Close()
			info, _ := l.wait(t) // fails after 5 s, far below CloseTimeout
			if info.Code != frames.CloseNormal || info.By != wsconn.SideLocal {
				t.Fatalf("closed with %v by %v, want 1000 by the server", info.Code, info.By)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("the connection lasted %v after the peer left", d)
			}
		})
	}
}

// A peer that keeps sending PINGs and data after the server's CLOSE,
// never answering it, is cut after CloseTimeout, and nothing follows the
// server's CLOSE on the wire (no PONG).
func TestPeerAdvChattyPeerCutAfterCloseTimeout(t *testing.T) {
	const closeTimeout = 300 * time.Millisecond
	url, _ := testServer(t, &wsconn.Config{CloseTimeout: closeTimeout}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return nil
	})
	c := dialRaw(t, url)
	c.expectClose(1000)
	start := time.Now()
	stop := make(chan struct{})
	batch := append(peerAdvMasked(frames.OpPing, true, []byte("still here")), peerAdvMasked(frames.OpBinary, true, []byte("data"))...)
	chatted := c.writeEvery(5*time.Millisecond, batch, stop) // pacing, not synchronisation
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(c.br)
	close(stop)
	<-chatted
	d := time.Since(start)
	// A reset is acceptable here: the peer kept sending.
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("waiting for the server to close: %v", err)
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes after the server's CLOSE: % x", len(rest), rest[:min(len(rest), 16)])
	}
	if d < closeTimeout-50*time.Millisecond || d > closeTimeout+3*time.Second {
		t.Fatalf("cut after %v, want about %v", d, closeTimeout)
	}
}

// A peer that never reads while the handler writes: the write that waits
// fails after WriteTimeout with an error matching ErrClosed and
// ErrWriteTimeout; every later write, Writer and Ping fails the same way;
// a loop reports 1006 "write failed" wrapping ErrWriteTimeout; and no
// CLOSE frame goes out (docs/closing.md, docs/handlers.md).
func TestPeerAdvWriteTimeoutAndWhatWritesReturnAfterwards(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	type result struct {
		first, again, writer, ping, inErr, cause error
		blocked                                  time.Duration
	}
	results := make(chan result, 1)
	url, _ := testServer(t, &wsconn.Config{WriteTimeout: writeTimeout, PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var r result
		chunk := make([]byte, 64<<10)
		for {
			t0 := time.Now()
			if r.first = out.WriteBinary(context.Background(), chunk); r.first != nil {
				r.blocked = time.Since(t0)
				break
			}
		}
		r.again = out.WriteText(context.Background(), "again")
		if w, err := out.Writer(context.Background(), messages.KindText); err != nil {
			r.writer = err
		} else {
			_, r.writer = w.Write([]byte("x"))
			_ = w.Close()
		}
		r.ping = out.Ping(context.Background(), nil)
		for range in.Messages(0) {
		}
		r.inErr = in.Err()
		r.cause = context.Cause(ctx)
		results <- r
		return nil
	})
	c := dialRawSmall(t, url)
	r := waitFor(t, results, "the handler")
	for name, err := range map[string]error{"first write": r.first, "second write": r.again, "Writer": r.writer, "Ping": r.ping} {
		if !errors.Is(err, wsconn.ErrClosed) || !errors.Is(err, wsconn.ErrWriteTimeout) {
			t.Errorf("%s after the write timeout: %v, want ErrClosed wrapping ErrWriteTimeout", name, err)
		}
		// The failing write and the writes after it carry the same cause,
		// the close code with it (docs/handlers.md, "After closing").
		if code := wsconn.CloseStatus(err); code != frames.CloseAbnormal {
			t.Errorf("CloseStatus(%s's error) = %d, want 1006", name, code)
		}
	}
	if r.blocked < writeTimeout*8/10 || r.blocked > writeTimeout+2*time.Second {
		t.Errorf("the failing write returned after %v, want 0.9 to 1 WriteTimeout (%v)", r.blocked, writeTimeout)
	}
	ce, ok := errors.AsType[*wsconn.CloseError](r.inErr)
	if !ok || ce.Code != frames.CloseAbnormal || ce.Reason != "write failed" || !errors.Is(r.inErr, wsconn.ErrWriteTimeout) {
		t.Errorf("in.Err() = %v, want 1006 write failed wrapping ErrWriteTimeout", r.inErr)
	}
	if !errors.Is(r.cause, wsconn.ErrWriteTimeout) {
		t.Errorf("context.Cause = %v, want ErrWriteTimeout", r.cause)
	}
	// Now read everything the server sent: whole data frames, perhaps a
	// cut one, and no CLOSE.
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(c.br)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading what the server sent: %v", err)
	}
	for len(all) >= 2 {
		n := frames.HeaderSize(all[0], all[1])
		if len(all) < n {
			break
		}
		h, err := frames.ParseHeader(all)
		if err != nil {
			t.Fatal(err)
		}
		if h.Op == frames.OpClose {
			t.Fatal("the server sent a CLOSE after its write failed")
		}
		if int64(len(all)-n) < h.Length {
			break
		}
		all = all[n+int(h.Length):]
	}
}

// A message in one-byte fragments is bounded by the message limit like any
// other: exactly the limit passes, one more byte closes with 1009.
func TestPeerAdvOneByteFragmentsAgainstTheLimit(t *testing.T) {
	const limit = 1000
	got := make(chan string, 1)
	inErr := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{MaxMessageSize: limit}, peerAdvCollect(nil, got, inErr))
	fragments := func(n int) []byte {
		var b []byte
		b = append(b, peerAdvMasked(frames.OpBinary, false, []byte{'x'})...)
		for range n - 2 {
			b = append(b, peerAdvMasked(frames.OpContinuation, false, []byte{'x'})...)
		}
		return append(b, peerAdvMasked(frames.OpContinuation, true, []byte{'x'})...)
	}
	c := dialRaw(t, url)
	c.write(fragments(limit))
	if m := waitFor(t, got, "the message"); len(m) != limit {
		t.Fatalf("message of %d bytes, want %d", len(m), limit)
	}
	c.write(fragments(limit + 1))
	c.expectClose(frames.CloseMessageTooBig)
	if err := waitFor(t, inErr, "the loop"); !errors.Is(err, messages.ErrTooLarge) {
		t.Fatalf("in.Err() = %v, want ErrTooLarge", err)
	}
}

// A flood of empty fragments costs no memory per fragment: the message
// they end arrives whole and allocation stays flat.
func TestPeerAdvEmptyFragmentFloodAllocatesNothingPerFragment(t *testing.T) {
	const n = 100_000
	got := make(chan string, 1)
	inErr := make(chan error, 1)
	url, _ := testServer(t, nil, peerAdvCollect(nil, got, inErr))
	empty := peerAdvMasked(frames.OpContinuation, false, nil)
	flood := peerAdvMasked(frames.OpText, false, nil)
	for range n {
		flood = append(flood, empty...)
	}
	flood = append(flood, peerAdvMasked(frames.OpContinuation, true, []byte("end"))...)
	c := dialRaw(t, url)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.write(flood)
	if m := waitFor(t, got, "the message"); m != "end" {
		t.Fatalf("message %q, want \"end\"", m)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("allocated %d bytes for %d empty fragments", grew, n)
	}
	c.frame(frames.OpClose, true, closePayload(1000, ""))
	c.expectClose(1000)
	if err := waitFor(t, inErr, "the loop"); err != nil {
		t.Fatalf("in.Err() = %v", err)
	}
}

// A new data frame inside a compressed fragmented message is a sequencing
// violation (1002), not bad compressed data (1007), for every iterator.
func TestPeerAdvNewMessageInsideACompressedOne(t *testing.T) {
	errc := make(chan error, 1)
	url, _ := testServerAccept(t, compressed(wsconn.Config{}), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		errc <- in.Err()
		return in.Err()
	})
	z := cmpCompress([]byte(strings.Repeat("fine ", 100)))
	c := dialRawExt(t, url, "permessage-deflate")
	c.frameRsv(frames.OpText, false, frames.Rsv1, z[:len(z)/2])
	c.frame(frames.OpText, true, []byte("new"))
	c.expectClose(frames.CloseProtocolError)
	if err := waitFor(t, errc, "the loop"); !errors.Is(err, messages.ErrExpectedContinuation) {
		t.Fatalf("in.Err() = %v, want ErrExpectedContinuation", err)
	}
}

// CLOSE payloads at the edges: a 123-byte reason is echoed whole; reasons
// that are not UTF-8 in less common ways get 1007.
func TestPeerAdvCloseReasonEdges(t *testing.T) {
	url, _ := testServer(t, nil, echo)
	long := strings.Repeat("é", 61) + "x" // 123 bytes
	c := dialRaw(t, url)
	c.frame(frames.OpClose, true, closePayload(1000, long))
	if reason := c.expectClose(1000); reason != long {
		t.Fatalf("echoed reason of %d bytes, want the 123 sent", len(reason))
	}
	c.expectEOF()
	for _, bad := range []string{"\xed\xa0\x80", "\xc0\xaf", "ok\xe2\x82", "\xf8\x88\x80\x80\x80"} {
		c := dialRaw(t, url)
		c.frame(frames.OpClose, true, closePayload(1000, bad))
		c.expectClose(frames.CloseInvalidPayload)
		c.expectEOF()
	}
}

// Stats count "the payload bytes of data frames as they crossed the
// wire": a frame refused for its announced size crossed none.
func TestPeerAdvRefusedFrameCountsNoBytesIn(t *testing.T) {
	l := newEventLog()
	inErr := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{Observer: l, MaxMessageSize: 1 << 10}, peerAdvCollect(nil, nil, inErr))
	c := dialRaw(t, url)
	c.write(peerAdvHugeHeader) // 2^63-1 announced, over the limit
	c.expectClose(frames.CloseMessageTooBig)
	waitFor(t, inErr, "the loop")
	c.nc.Close()
	info, _ := l.wait(t)
	if info.BytesIn != 0 {
		t.Fatalf("BytesIn = %d for a frame refused before any payload byte was read", info.BytesIn)
	}
}

// Frames sent in the same packet as the upgrade request (more than the
// connection's small idle buffer holds) are served in order, a violation
// among them included.
func TestPeerAdvFramesInTheHandshakePacket(t *testing.T) {
	url, _ := testServer(t, nil, echo)
	host := strings.TrimPrefix(url, "ws://")
	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	b := []byte(upgradeRequest(host, "", "dGhlIHNhbXBsZSBub25jZQ==", nil))
	const n = 40
	for i := range n {
		b = append(b, peerAdvMasked(frames.OpText, true, []byte(strings.Repeat(string(rune('a'+i%26)), i+1)))...)
	}
	b = append(b, peerAdvMasked(frames.OpContinuation, true, []byte("stray"))...)
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	c, resp := (&rawClient{t: t, nc: nc}), (*http.Response)(nil)
	c.br = bufio.NewReader(nc)
	if resp, err = http.ReadResponse(c.br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	for i := range n {
		want := strings.Repeat(string(rune('a'+i%26)), i+1)
		if h, p := c.read(); h.Op != frames.OpText || string(p) != want {
			t.Fatalf("message %d: %v %q, want %q", i, h.Op, p, want)
		}
	}
	c.expectClose(frames.CloseProtocolError)
	c.expectEOF()
}

// TestPeerAdvMessagesBeforeCloseReachTheLoop: the peer sends three
// messages and its CLOSE while the loop body is busy with the first. The
// background reader takes the CLOSE (the handler's context ends at once)
// and keeps the two messages before it: the loop still yields them, in
// order, whoever met the CLOSE. Data after the CLOSE is never yielded.
func TestPeerAdvMessagesBeforeCloseReachTheLoop(t *testing.T) {
	got := make(chan []string, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var seen []string
		for m := range in.Messages(0) {
			if len(seen) == 0 {
				<-ctx.Done() // busy until the background reader takes the CLOSE
			}
			seen = append(seen, string(m.Payload))
		}
		got <- seen
		return in.Err()
	})
	c := dialRaw(t, url)
	for _, m := range []string{"one", "two", "three"} {
		c.frame(frames.OpText, true, []byte(m))
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, "bye"))
	c.frame(frames.OpText, true, []byte("after the close"))
	c.expectClose(frames.CloseNormal)
	if seen := <-got; strings.Join(seen, ",") != "one,two,three" {
		t.Fatalf("the loop yielded %q, want one, two, three", seen)
	}
}
