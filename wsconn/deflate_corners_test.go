package wsconn_test

// Corners of permessage-deflate (RFC 7692) and message-size limits
// that promises_compression_test.go, adversarial_deflate_test.go
// and deflate_test.go leave open. Every test goes through a loopback
// socket: to a router-served colibri, with raw frames compressed by the
// standard library, gorilla/websocket or coder/websocket as the peer, or,
// for colibri's client (wsclient), to a raw server. Helpers named cmp*
// come from promises_compression_test.go.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// readAnswer reads the next data message; a CLOSE instead fails the
// test with its code.
func readAnswer(t *testing.T, c *cmpRaw) (frames.Header, []byte) {
	t.Helper()
	for {
		h, p := c.read()
		switch h.Op {
		case frames.OpPing, frames.OpPong:
			continue
		case frames.OpClose:
			code, reason, _ := frames.ParseClose(p)
			t.Fatalf("server closed with %v %q instead of answering", code, reason)
		}
		for !h.Fin {
			h2, q := c.read()
			if h2.Op.IsControl() {
				continue
			}
			p = append(p, q...)
			h.Fin = h2.Fin
		}
		return h, p
	}
}

// ---- limits ----

// TestDeflateTinyLimitAcceptsMessagesWithinIt: compression.md says
// "every message within the limit fits, however its sender compressed
// it". A deflate encoding has a fixed overhead (the standard library,
// which gorilla uses, stores a short message in 6 bytes more than the
// payload), so under a limit of a few bytes twice the limit alone would
// refuse a message of exactly the limit with 1009.
func TestDeflateTinyLimitAcceptsMessagesWithinIt(t *testing.T) {
	url := cmpServe(t, cmpRoute{path: "/", cfg: cmpOn(wsconn.Compression{}), h: sizesUnder(4)})
	t.Run("raw", func(t *testing.T) {
		for _, msg := range []string{"a", "ok", "ping"} {
			c := cmpDial(t, url+"/", "permessage-deflate")
			c.send(frames.OpText, true, frames.Rsv1, cmpCompress([]byte(msg)))
			if _, p := readAnswer(t, c); string(p) != fmt.Sprintf("text %d", len(msg)) {
				t.Fatalf("%q: server saw %q", msg, p)
			}
			c.closeNormally()
		}
	})
	t.Run("gorilla", func(t *testing.T) {
		c := dialGorillaDeflate(t, url+"/")
		if err := c.WriteMessage(gorilla.TextMessage, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "text 4" {
			t.Fatalf("a 4-byte message against a 4-byte limit: %q, %v", p, err)
		}
	})
}

// TestDeflateFramesCompressedLimit: Inbound.Frames bounds the
// frames of a compressed message at twice MaxMessageSize plus 1 KiB
// (compression.md): a frame just within it that inflates to little is
// accepted, one just over it closes 1009 before its payload is read.
func TestDeflateFramesCompressedLimit(t *testing.T) {
	const limit = 1000
	url := cmpServe(t, cmpRoute{path: "/", cfg: wsconn.Config{MaxMessageSize: limit, Compression: wsconn.Compression{Enabled: true}},
		h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for f := range in.Frames() {
				if err := out.WriteText(ctx, fmt.Sprint(len(f.Payload))); err != nil {
					return err
				}
			}
			return in.Err()
		}})
	c := cmpDial(t, url+"/", "permessage-deflate")
	hi := cmpCompress([]byte("hi"))
	bound := 2*limit + 1024
	// Empty stored blocks are 5 bytes each: pad up to the bound exactly.
	within := append(cmpEmptyBlocks((bound-len(hi))/5), hi...)
	if len(within) > bound || len(within) < bound-5 {
		t.Fatalf("test set-up: %d bytes, want just within %d", len(within), bound)
	}
	c.send(frames.OpBinary, true, frames.Rsv1, within)
	if h, p := c.read(); h.Op != frames.OpText || string(p) != "2" {
		t.Fatalf("%d compressed bytes against a bound of %d: got %v %q, want the 2 inflated bytes", len(within), bound, h.Op, p)
	}
	over := append(cmpEmptyBlocks(1+(bound-len(hi))/5), hi...)
	if len(over) <= bound {
		t.Fatalf("test set-up: %d bytes, want over %d", len(over), bound)
	}
	c.send(frames.OpBinary, true, frames.Rsv1, over)
	h, p := c.read()
	if h.Op != frames.OpClose {
		t.Fatalf("%d compressed bytes in one frame against a bound of %d: accepted, the loop saw %q", len(over), bound, p)
	}
	if code, _, _ := frames.ParseClose(p); code != frames.CloseMessageTooBig {
		t.Fatalf("close %v, want 1009", code)
	}
}

// TestDeflateLimitsAcrossFragmentsAndControlFrames: a compressed
// message cut into many fragments with PINGs between them is held to the
// loop's limit on its inflated size: exactly the limit passes (for
// Messages(limit) above and below MaxMessageSize, and for Frames), one
// byte more closes 1009 even though the excess arrives in the last
// fragment; MaxFrameSize refuses a compressed continuation frame over it
// with 1009 before its payload. The PINGs are answered in order.
func TestDeflateLimitsAcrossFragmentsAndControlFrames(t *testing.T) {
	frameSizes := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for f := range in.Frames() {
			if err := out.WriteText(ctx, fmt.Sprintf("%v %d", messages.Kind(f.Op), len(f.Payload)), wsconn.Uncompressed); err != nil {
				return err
			}
		}
		return in.Err()
	}
	url := cmpServe(t,
		// Messages(limit) above MaxMessageSize: the argument rules.
		cmpRoute{path: "/above", cfg: wsconn.Config{MaxMessageSize: 100, Compression: wsconn.Compression{Enabled: true}}, h: sizesUnder(3000)},
		cmpRoute{path: "/below", cfg: cmpOn(wsconn.Compression{}), h: sizesUnder(3000)},
		cmpRoute{path: "/frames", cfg: wsconn.Config{MaxMessageSize: 3000, Compression: wsconn.Compression{Enabled: true}}, h: frameSizes},
		cmpRoute{path: "/maxframe", cfg: wsconn.Config{MaxFrameSize: 64, Compression: wsconn.Compression{Enabled: true}}, h: sizesUnder(0)})
	// Text that compresses to about 5/8: many fragments of compressed data.
	send := func(c *cmpRaw, op frames.Opcode, z []byte, piece int) {
		rsv := frames.Rsv1
		for i := 0; ; i++ {
			n := min(len(z), piece)
			c.send(op, n == len(z), rsv, z[:n])
			if n == len(z) {
				return
			}
			c.send(frames.OpPing, true, 0, []byte{byte(i)})
			z, op, rsv = z[n:], frames.OpContinuation, 0
		}
	}
	expectPongs := func(t *testing.T, c *cmpRaw, n int) {
		t.Helper()
		for i := range n {
			h, p := c.read()
			if h.Op != frames.OpPong || !bytes.Equal(p, []byte{byte(i)}) {
				t.Fatalf("answer %d: %v %x, want PONG %02x", i, h.Op, p, i)
			}
		}
	}
	exact := cmpLetters(31, 3000)
	for _, path := range []string{"/above", "/below", "/frames"} {
		t.Run(path+" exact", func(t *testing.T) {
			c := cmpDial(t, url+path, "permessage-deflate")
			z := cmpCompress(exact)
			pieces := (len(z) + 99) / 100
			send(c, frames.OpText, z, 100)
			expectPongs(t, c, pieces-1)
			if _, p := readAnswer(t, c); string(p) != "text 3000" {
				t.Fatalf("server saw %q", p)
			}
			c.closeNormally()
		})
		t.Run(path+" one over", func(t *testing.T) {
			c := cmpDial(t, url+path, "permessage-deflate")
			z := cmpCompress(append(append([]byte(nil), exact...), 'x'))
			send(c, frames.OpText, z, 100)
			c.expectClose(frames.CloseMessageTooBig)
		})
	}
	t.Run("/maxframe continuation", func(t *testing.T) {
		c := cmpDial(t, url+"/maxframe", "permessage-deflate")
		z := cmpCompress(cmpLetters(32, 500))
		c.send(frames.OpBinary, false, frames.Rsv1, z[:64])
		c.send(frames.OpContinuation, true, 0, z[64:])
		c.expectClose(frames.CloseMessageTooBig)
	})
}

// ---- protocol violations ----

// TestDeflateViolationCorners: RSV1 where RFC 7692 §6 forbids it, in
// places the existing tests do not send it, closes with 1002: on a PING
// between messages, on the continuation of an uncompressed message, on a
// frame when the server has compression on but the client did not offer
// it. Text that is invalid only once inflated closes with 1007 also when
// its window came from an earlier message (context takeover), and data
// that stops inflating in a later fragment after good output closes 1007.
func TestDeflateViolationCorners(t *testing.T) {
	url := cmpServe(t,
		cmpRoute{path: "/reset", cfg: cmpOn(wsconn.Compression{}), h: sizesUnder(0)},
		cmpRoute{path: "/takeover", cfg: cmpOn(wsconn.Compression{ContextTakeover: true}), h: sizesUnder(0)})
	good := cmpCompress([]byte(strings.Repeat("fine ", 100)))
	tests := []struct {
		name, path, offer string
		send              func(c *cmpRaw)
		code              frames.CloseCode
	}{
		{"RSV1 on a PING between messages", "/reset", "permessage-deflate", func(c *cmpRaw) {
			c.send(frames.OpPing, true, frames.Rsv1, []byte("p"))
		}, frames.CloseProtocolError},
		{"RSV1 on the continuation of an uncompressed message", "/reset", "permessage-deflate", func(c *cmpRaw) {
			c.send(frames.OpText, false, 0, []byte("plain "))
			c.send(frames.OpContinuation, true, frames.Rsv1, good)
		}, frames.CloseProtocolError},
		{"RSV1 with compression on but not offered", "/reset", "", func(c *cmpRaw) {
			c.send(frames.OpBinary, true, frames.Rsv1, good)
		}, frames.CloseProtocolError},
		{"RSV1 with compression on but another extension offered", "/takeover", "x-webkit-deflate-frame", func(c *cmpRaw) {
			c.send(frames.OpBinary, true, frames.Rsv1, good)
		}, frames.CloseProtocolError},
		{"text invalid once inflated with the kept window", "/takeover", "permessage-deflate", func(c *cmpRaw) {
			d := newCmpDeflater()
			first := []byte(strings.Repeat("window ", 50))
			c.send(frames.OpText, true, frames.Rsv1, d.message(first))
			c.expectText("text 350")
			// Valid bytes referring back, then a lone continuation byte.
			c.send(frames.OpText, true, frames.Rsv1, d.message(append([]byte(strings.Repeat("window ", 40)), 0x80)))
		}, frames.CloseInvalidPayload},
		{"inflation fails in a later fragment", "/reset", "permessage-deflate", func(c *cmpRaw) {
			z := cmpCompress(cmpLetters(33, 2000))
			c.send(frames.OpBinary, false, frames.Rsv1, z[:len(z)/2])
			c.send(frames.OpContinuation, true, 0, bytes.Repeat([]byte{0xff}, 200))
		}, frames.CloseInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var offers []string
			if tt.offer != "" {
				offers = []string{tt.offer}
			}
			c := cmpDial(t, url+tt.path, offers...)
			tt.send(c)
			c.expectClose(tt.code)
		})
	}
}

// expectText reads a data message and checks it is the text want.
func (c *cmpRaw) expectText(want string) {
	c.t.Helper()
	h, p := c.readMessage()
	if h.Op != frames.OpText || string(p) != want {
		c.t.Fatalf("got %v %q, want %q", h.Op, p, want)
	}
}

// TestDeflateCloseBetweenCompressedFragments: the peer may close in
// the middle of a compressed message (a CLOSE is a control frame, allowed
// between fragments). colibri echoes the code at once, the loop ends with
// the peer's *CloseError and yields nothing of the unfinished message
// (Readers has yielded its reader, whose reads then fail).
func TestDeflateCloseBetweenCompressedFragments(t *testing.T) {
	type result struct {
		n   int
		err error
	}
	results := make(chan result, 3)
	h := func(loop string) wsconn.Handler[struct{}] {
		return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			n := 0
			switch loop {
			case "messages":
				for range in.Messages(0) {
					n++
				}
			case "frames":
				for range in.Frames() {
					n++
				}
			case "readers":
				for _, r := range in.Readers() {
					n++
					_, _ = io.Copy(io.Discard, r)
				}
			}
			results <- result{n, in.Err()}
			return nil
		}
	}
	url := cmpServe(t,
		cmpRoute{path: "/messages", cfg: cmpOn(wsconn.Compression{}), h: h("messages")},
		cmpRoute{path: "/frames", cfg: cmpOn(wsconn.Compression{}), h: h("frames")},
		cmpRoute{path: "/readers", cfg: cmpOn(wsconn.Compression{}), h: h("readers")})
	for _, loop := range []string{"messages", "frames", "readers"} {
		t.Run(loop, func(t *testing.T) {
			c := cmpDial(t, url+"/"+loop, "permessage-deflate")
			z := cmpCompress(cmpLetters(34, 3000))
			c.send(frames.OpText, false, frames.Rsv1, z[:500])
			c.send(frames.OpClose, true, 0, closePayload(4321, "bye"))
			c.expectClose(4321)
			r := waitFor(t, results, "the handler")
			yielded := 0
			if loop == "readers" {
				yielded = 1 // the reader of the unfinished message
			}
			var ce *wsconn.CloseError
			if r.n != yielded || !errors.As(r.err, &ce) || ce.Code != 4321 {
				t.Fatalf("loop yielded %d and ended with %v, want %d and the peer's CloseError 4321", r.n, r.err, yielded)
			}
		})
	}
}

// ---- context takeover ----

// TestDeflateInboundTakeoverMixedTraffic: with context takeover on
// in the client's direction, compressed messages share one LZ77 window;
// uncompressed messages between them do not enter it (RFC 7692 §7.2.1
// applies only to compressed messages), nor do empty compressed messages
// add anything. Messages come fragmented with PINGs between fragments, and
// are read in turn with Messages, Frames and Readers (the last with tiny
// reads). Each is echoed uncompressed and must match.
func TestDeflateInboundTakeoverMixedTraffic(t *testing.T) {
	report := func(ctx context.Context, out *wsconn.Outbound, kind messages.Kind, p []byte) error {
		return out.WriteMessage(ctx, messages.Message{Kind: kind, Payload: p}, wsconn.Uncompressed)
	}
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for i := 0; ; i++ {
			got := false
			var err error
			switch i % 3 {
			case 0:
				for m := range in.Messages(0) {
					got, err = true, report(ctx, out, m.Kind, m.Payload)
					break
				}
			case 1:
				// Plain messages come frame by frame, compressed ones whole.
				var kind messages.Kind
				var b []byte
				for f := range in.Frames() {
					if f.Op != frames.OpContinuation {
						kind = messages.Kind(f.Op)
					}
					b = append(b, f.Payload...)
					if f.Fin {
						got, err = true, report(ctx, out, kind, b)
						break
					}
				}
			case 2:
				for kind, r := range in.Readers() {
					got = true
					var b []byte
					var chunk [7]byte
					for {
						n, rerr := r.Read(chunk[:])
						b = append(b, chunk[:n]...)
						if rerr == io.EOF {
							break
						}
						if rerr != nil {
							return rerr
						}
					}
					err = report(ctx, out, kind, b)
					break
				}
			}
			if err != nil {
				return err
			}
			if !got {
				return in.Err()
			}
		}
	}
	url := cmpServe(t, cmpRoute{path: "/", cfg: cmpOn(wsconn.Compression{ContextTakeover: true}), h: handler})
	c := cmpDial(t, url+"/", "permessage-deflate")
	if got := cmpNorm(c.answer()); got != "permessage-deflate" {
		t.Fatalf("answer %q", got)
	}
	d := newCmpDeflater()
	base := cmpLetters(35, 6000)
	type msg struct {
		p          []byte
		compressed bool
		pieces     int
	}
	var msgs []msg
	for i := range 12 {
		m := append([]byte(fmt.Sprintf("%02d é ✓ ", i)), base[i*100:i*100+3000]...)
		switch i % 4 {
		case 0:
			msgs = append(msgs, msg{m, true, 1})
		case 1:
			// Uncompressed, not in the window: a message after it that
			// refers to it would not inflate.
			msgs = append(msgs, msg{[]byte(fmt.Sprintf("plain %d ", i) + strings.Repeat("Q", 400)), false, 2})
		case 2:
			msgs = append(msgs, msg{nil, true, 1}) // empty compressed
		case 3:
			msgs = append(msgs, msg{m, true, 4})
		}
	}
	for i, m := range msgs {
		payload, rsv := m.p, byte(0)
		if m.compressed {
			payload, rsv = d.message(m.p), frames.Rsv1
		}
		if m.compressed && i > 0 && len(m.p) > 0 && len(payload)*3 > len(m.p) {
			t.Fatalf("message %d: the client's window was not used (%d bytes for %d)", i, len(payload), len(m.p))
		}
		op := frames.OpText
		step := max(1, (len(payload)+m.pieces-1)/m.pieces)
		for k := 0; ; k++ {
			n := min(len(payload), step)
			c.send(op, n == len(payload), rsv, payload[:n])
			if n == len(payload) {
				break
			}
			c.send(frames.OpPing, true, 0, []byte{byte(i), byte(k)})
			payload, op, rsv = payload[n:], frames.OpContinuation, 0
		}
		h, got := readAnswer(t, c)
		if h.Rsv != 0 || h.Op != frames.OpText || !bytes.Equal(got, m.p) {
			t.Fatalf("message %d (compressed %v): server read %d bytes %.20q, want %d %.20q", i, m.compressed, len(got), got, len(m.p), m.p)
		}
	}
	c.closeNormally()
}

// TestDeflateOutboundTakeoverMixedWrites: with ContextTakeover on
// and no server_no_context_takeover, every way of writing keeps the
// server's window in step with what a client inflating with one window
// sees: messages under the threshold and Uncompressed ones go out plain and
// stay out of the window; WriteMessage, Writer (including an empty one),
// and WritePrepared (encoded with the connection's own context) go out
// compressed. Also with a 10-bit window, and with server_no_context_takeover
// (each compressed message must then inflate alone).
func TestDeflateOutboundTakeoverMixedWrites(t *testing.T) {
	big := cmpLetters(36, 5000)
	prep := wsconn.Prepare(messages.Binary(append([]byte("prepared "), big[:3000]...)))
	type want struct {
		p          []byte
		compressed bool
	}
	var wants []want
	add := func(p []byte, compressed bool) { wants = append(wants, want{p, compressed}) }
	add(append([]byte("A "), big...), true)
	add([]byte("small"), false)
	add(append([]byte("B "), big[:4000]...), true)
	add(append([]byte("C opted out "), big...), false)
	add(append([]byte("D streamed "), big...), true)
	add(nil, true) // empty Writer
	add(prep.Message().Payload, true)
	add(append([]byte("E streamed plain "), big...), false)
	add(append([]byte("F "), big[1000:]...), true)
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		stream := func(p []byte, opts ...wsconn.WriteOption) error {
			w, err := out.Writer(ctx, messages.KindBinary, opts...)
			if err != nil {
				return err
			}
			for len(p) > 0 {
				n := min(len(p), 333)
				if _, err := w.Write(p[:n]); err != nil {
					return err
				}
				p = p[n:]
			}
			return w.Close()
		}
		for _, err := range []error{
			out.WriteBinary(ctx, wants[0].p),
			out.WriteBinary(ctx, wants[1].p),
			out.WriteBinary(ctx, wants[2].p),
			out.WriteBinary(ctx, wants[3].p, wsconn.Uncompressed),
			stream(wants[4].p),
			stream(nil),
			out.WritePrepared(ctx, prep),
			stream(wants[7].p, wsconn.Uncompressed),
			out.WriteBinary(ctx, wants[8].p),
		} {
			if err != nil {
				return err
			}
		}
		return cmpDrain(in)
	}
	url := cmpServe(t, cmpRoute{path: "/", cfg: wsconn.Config{FragmentSize: 700, Compression: wsconn.Compression{Enabled: true, ContextTakeover: true}}, h: handler})
	for _, tc := range []struct {
		offer    string
		takeover bool
	}{
		{"permessage-deflate", true},
		{"permessage-deflate; server_max_window_bits=10", true},
		{"permessage-deflate; server_no_context_takeover", false},
	} {
		t.Run(tc.offer, func(t *testing.T) {
			c := cmpDial(t, url+"/", tc.offer)
			var hist []byte
			for i, w := range wants {
				h, p := c.readMessage()
				if (h.Rsv == frames.Rsv1) != w.compressed {
					t.Fatalf("message %d: RSV %b, want compressed %v", i, h.Rsv, w.compressed)
				}
				got := p
				if w.compressed {
					if !tc.takeover {
						hist = nil
					}
					out, _, err := cmpInflateDist(append(p, cmpTail...), hist)
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					got = out[len(hist):]
					hist = out
					if len(hist) > 64<<10 {
						hist = hist[len(hist)-(32<<10):]
					}
				}
				if !bytes.Equal(got, w.p) {
					t.Fatalf("message %d: %d bytes %.20q, want %d %.20q", i, len(got), got, len(w.p), w.p)
				}
			}
			c.closeNormally()
		})
	}
}

// TestDeflateCoderTakeoverMixedSizes: coder/websocket in both of
// its modes against colibri with ContextTakeover on and off, each side
// with its own threshold, so that compressed and plain messages (empty
// ones, ones at and around both thresholds, ones over FragmentSize)
// interleave in both directions over many messages; colibri answers with
// WriteMessage, a streamed Writer and WritePrepared in turn. Both windows
// must stay in step: every echo arrives intact.
func TestDeflateCoderTakeoverMixedSizes(t *testing.T) {
	echo3 := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		i := 0
		for m := range in.Messages(0) {
			var err error
			switch i % 3 {
			case 0:
				err = out.WriteMessage(ctx, m)
			case 1:
				var w io.WriteCloser
				if w, err = out.Writer(ctx, m.Kind); err == nil {
					p := m.Payload
					for len(p) > 0 && err == nil {
						n := min(len(p), 1000)
						_, err = w.Write(p[:n])
						p = p[n:]
					}
					err = errors.Join(err, w.Close())
				}
			case 2:
				err = out.WritePrepared(ctx, wsconn.Prepare(m))
			}
			if err != nil {
				return err
			}
			i++
		}
		return in.Err()
	}
	cfg := func(takeover bool) wsconn.Config {
		return wsconn.Config{FragmentSize: 4096, Compression: wsconn.Compression{Enabled: true, ContextTakeover: takeover, Threshold: 300}}
	}
	url := cmpServe(t,
		cmpRoute{path: "/takeover", cfg: cfg(true), h: echo3},
		cmpRoute{path: "/reset", cfg: cfg(false), h: echo3})
	base := cmpTempting(37, 20000)
	sizes := []int{0, 1, 127, 128, 129, 299, 300, 301, 512, 513, 5000, 0, 10000, 200, 9000}
	for _, path := range []string{"/takeover", "/reset"} {
		for _, mode := range []coder.CompressionMode{coder.CompressionContextTakeover, coder.CompressionNoContextTakeover} {
			t.Run(fmt.Sprint(path, " ", mode), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, _, err := coder.Dial(ctx, url+path, &coder.DialOptions{CompressionMode: mode, CompressionThreshold: 128})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				for round := range 3 {
					for j, n := range sizes {
						off := (round*7919 + j*131) % (len(base) - n + 1)
						m := append([]byte(nil), base[off:off+n]...)
						typ := coder.MessageBinary
						if j%2 == 0 {
							typ = coder.MessageText
						}
						if err := c.Write(ctx, typ, m); err != nil {
							t.Fatal(err)
						}
						gt, got, err := c.Read(ctx)
						if err != nil || gt != typ || !bytes.Equal(got, m) {
							t.Fatalf("round %d message %d (%d bytes): got %v %d bytes, %v", round, j, n, gt, len(got), err)
						}
					}
				}
				if err := c.Close(coder.StatusNormalClosure, ""); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestDeflateGorillaFragmentsWithPings: gorilla/websocket streams a
// compressed message in several frames (its write buffer is small) and
// sends PINGs between them from the same goroutine; colibri answers each
// PING while inflating and echoes the message intact. Against ContextTakeover
// on (which gorilla declines) and off.
func TestDeflateGorillaFragmentsWithPings(t *testing.T) {
	url := cmpServe(t,
		cmpRoute{path: "/takeover", cfg: cmpOn(wsconn.Compression{ContextTakeover: true}), h: echo},
		cmpRoute{path: "/reset", cfg: cmpOn(wsconn.Compression{}), h: echo})
	for _, path := range []string{"/takeover", "/reset"} {
		t.Run(path, func(t *testing.T) {
			d := gorilla.Dialer{EnableCompression: true, HandshakeTimeout: 5 * time.Second, WriteBufferSize: 512}
			c, _, err := d.Dial(url+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			pongs, pings := 0, 0
			c.SetPongHandler(func(string) error { pongs++; return nil })
			for i, m := range [][]byte{cmpRandom(38, 6000), cmpLetters(39, 9000), {}, []byte("x")} {
				w, err := c.NextWriter(gorilla.BinaryMessage)
				if err != nil {
					t.Fatal(err)
				}
				for k := 0; k < len(m); k += 1500 {
					if _, err := w.Write(m[k:min(k+1500, len(m))]); err != nil {
						t.Fatal(err)
					}
					if err := c.WriteControl(gorilla.PingMessage, []byte{byte(k)}, time.Now().Add(5*time.Second)); err != nil {
						t.Fatal(err)
					}
					pings++
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, m) {
					t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
				}
			}
			if pongs != pings {
				t.Errorf("%d PONGs for %d PINGs", pongs, pings)
			}
		})
	}
}

// ---- Prepared ----

// TestDeflatePreparedFraming: a prepared message whose compressed
// frame is shared goes out as that one frame whatever FragmentSize says; a
// connection that cannot share it (another level than the one the frame
// was made at, or its own context) encodes it afresh and fragments it at
// FragmentSize like any message (configuration.md, compression.md).
func TestDeflatePreparedFraming(t *testing.T) {
	outs := make(chan *wsconn.Outbound, 4)
	wait := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		outs <- out
		return cmpDrain(in)
	}
	url := cmpServe(t,
		cmpRoute{path: "/l1", cfg: wsconn.Config{FragmentSize: 512, Compression: wsconn.Compression{Enabled: true}}, h: wait},
		cmpRoute{path: "/l9", cfg: wsconn.Config{FragmentSize: 512, Compression: wsconn.Compression{Enabled: true, Level: 9}}, h: wait},
		cmpRoute{path: "/takeover", cfg: wsconn.Config{FragmentSize: 512, Compression: wsconn.Compression{Enabled: true, ContextTakeover: true}}, h: wait})
	data := cmpRandom(40, 5000)
	p := wsconn.Prepare(messages.Binary(data))
	for _, tc := range []struct {
		path   string
		shared bool
	}{{"/l1", true}, {"/l9", false}, {"/takeover", false}} {
		c := cmpDial(t, url+tc.path, "permessage-deflate")
		out := waitFor(t, outs, "the handler")
		if err := out.WritePrepared(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		h, b := c.read()
		if h.Rsv != frames.Rsv1 {
			t.Errorf("%s: the prepared message's first frame has RSV %b, want compressed", tc.path, h.Rsv)
		}
		if tc.shared && !h.Fin {
			t.Errorf("%s: the shared frame was fragmented (%d bytes first), want one frame", tc.path, len(b))
		}
		if !tc.shared && (h.Fin || len(b) != 512) {
			t.Errorf("%s: first frame FIN %v with %d bytes, want a 512-byte fragment", tc.path, h.Fin, len(b))
		}
		for !h.Fin {
			var q []byte
			h, q = c.read()
			if len(q) > 512 {
				t.Errorf("%s: a %d-byte fragment, over FragmentSize", tc.path, len(q))
			}
			b = append(b, q...)
		}
		if got, err := cmpInflate(b, nil); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: inflates to %d bytes, %v", tc.path, len(got), err)
		}
		c.closeNormally()
	}
}

// ---- stats ----

// TestDeflateStatsCountWireBytes: Stats' BytesIn and BytesOut count
// the payload bytes of data frames as they crossed the wire, compressed
// when compressed, without control frames; MessagesIn and MessagesOut
// count whole messages. The client counts the same from its side, over
// every way of reading (Messages, Frames, Readers) and of writing
// (WriteText/WriteBinary under and over the threshold and fragmented,
// Uncompressed, Writer compressed and plain, WritePrepared shared and
// plain).
func TestDeflateStatsCountWireBytes(t *testing.T) {
	big := cmpLetters(41, 5000)
	noise := cmpRandom(42, 3000)
	prepBig := wsconn.Prepare(messages.Binary(big))
	prepSmall := wsconn.Prepare(messages.Text("tiny"))
	stats := make(chan wsconn.Stats, 2)
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
			break
		}
		for range in.Messages(0) {
			break
		}
		for range in.Frames() {
			break
		}
		for _, r := range in.Readers() {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return err
			}
			break
		}
		if err := in.Err(); err != nil {
			return err
		}
		stream := func(p []byte, opts ...wsconn.WriteOption) error {
			w, err := out.Writer(ctx, messages.KindBinary, opts...)
			if err != nil {
				return err
			}
			if _, err := w.Write(p[:len(p)/2]); err != nil {
				return err
			}
			if _, err := w.Write(p[len(p)/2:]); err != nil {
				return err
			}
			return w.Close()
		}
		for _, err := range []error{
			out.WriteText(ctx, "short"),
			out.WriteBinary(ctx, big),
			out.WriteBinary(ctx, noise),
			out.WriteBinary(ctx, big, wsconn.Uncompressed),
			stream(noise),
			stream(big, wsconn.Uncompressed),
			out.WritePrepared(ctx, prepBig),
			out.WritePrepared(ctx, prepSmall),
		} {
			if err != nil {
				return err
			}
		}
		stats <- s.Stats()
		return cmpDrain(in)
	}
	url := cmpServe(t, cmpRoute{path: "/", cfg: wsconn.Config{FragmentSize: 1000, Compression: wsconn.Compression{Enabled: true}}, h: handler})
	c := cmpDial(t, url+"/", "permessage-deflate")
	var sent int64
	send := func(op frames.Opcode, fin bool, rsv byte, p []byte) {
		c.send(op, fin, rsv, p)
		sent += int64(len(p))
	}
	// Messages: a compressed message in three fragments with a PING.
	z := cmpCompress(big)
	send(frames.OpText, false, frames.Rsv1, z[:100])
	c.send(frames.OpPing, true, 0, []byte("not counted"))
	send(frames.OpContinuation, false, 0, z[100:200])
	send(frames.OpContinuation, true, 0, z[200:])
	// Messages: a plain message.
	send(frames.OpBinary, true, 0, []byte("plain"))
	// Frames: a compressed empty message.
	send(frames.OpBinary, true, frames.Rsv1, []byte{0x00})
	// Readers: a compressed message ending with a BFINAL block, so that
	// the inflater never reads the tail colibri appends.
	var fb bytes.Buffer
	fw, _ := flate.NewWriter(&fb, flate.BestSpeed)
	_, _ = fw.Write(noise)
	_ = fw.Close()
	send(frames.OpBinary, true, frames.Rsv1, fb.Bytes())
	var received int64
	msgs := 0
	for msgs < 8 {
		h, p := c.read()
		if h.Op.IsControl() {
			continue
		}
		received += int64(len(p))
		if h.Fin {
			msgs++
		}
	}
	st := waitFor(t, stats, "the handler")
	want := wsconn.Stats{MessagesIn: 4, MessagesOut: 8, BytesIn: sent, BytesOut: received}
	if st != want {
		t.Fatalf("Stats %+v, want %+v", st, want)
	}
	c.closeNormally()
}

// ---- Readers ----

// TestDeflateReadersSplitRunes: a compressed text message of
// multi-byte characters, read by a Readers body with reads of 1 to 5
// bytes, splits characters across reads; the UTF-8 check across reads
// must not fail valid text, and must fail text that ends inside a
// character (1007) even when the body stops reading early.
func TestDeflateReadersSplitRunes(t *testing.T) {
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for _, r := range in.Readers() {
			var b []byte
			buf := make([]byte, 5)
			for k := 1; ; k = k%5 + 1 {
				n, err := r.Read(buf[:k])
				b = append(b, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				if len(b) > 40000 {
					break // leave the rest to colibri
				}
			}
			if err := out.WriteText(ctx, fmt.Sprint(len(b)), wsconn.Uncompressed); err != nil {
				return err
			}
		}
		return in.Err()
	}
	url := cmpServe(t, cmpRoute{path: "/", cfg: cmpOn(wsconn.Compression{}), h: handler})
	text := []byte(strings.Repeat("aé€😀", 1500)) // 1+2+3+4 bytes
	c := cmpDial(t, url+"/", "permessage-deflate")
	c.send(frames.OpText, true, frames.Rsv1, cmpCompress(text))
	c.expectText(fmt.Sprint(len(text)))
	long := []byte(strings.Repeat("aé€😀", 5000))
	bad := append(append([]byte(nil), long...), 0xf0, 0x9f, 0x98) // cut inside 😀
	c.send(frames.OpText, true, frames.Rsv1, cmpCompress(bad))
	c.expectClose(frames.CloseInvalidPayload)
}

// ---- colibri as the client ----

// dcRawServer is a server that answers the upgrade with the given
// Sec-WebSocket-Extensions and then hands the raw connection to serve.
func dcRawServer(t *testing.T, answer string, serve func(nc net.Conn, br *bufio.Reader)) string {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer nc.Close()
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		fmt.Fprintf(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(sum[:]), answer)
		serve(nc, brw.Reader)
		close(done)
	}))
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// dcReadClientFrame reads one masked frame and unmasks it.
func dcReadClientFrame(br *bufio.Reader) (frames.Header, []byte, error) {
	h, p, err := readFrame(br)
	if err != nil {
		return h, nil, err
	}
	frames.Mask(p, h.Mask, 0)
	return h, p, nil
}

// TestDeflateClientKeepsItsNoTakeoverHint: with ContextTakeover
// off, wsclient offers "client_no_context_takeover", which RFC 7692
// §7.1.1.2 makes a promise: "even if the server doesn't include the
// client_no_context_takeover extension parameter in the corresponding
// extension negotiation response to the offer, the client is not going to
// use context takeover" (Compression's doc: "Default false: both sides
// reset their context after every message"). A server may answer without
// the parameter and rely on the promise, resetting its decompressor after
// every message: the client's second message must then inflate alone,
// without referring back to the first.
func TestDeflateClientKeepsItsNoTakeoverHint(t *testing.T) {
	msg := cmpLetters(50, 3000)
	got := make(chan [][]byte, 1)
	url := dcRawServer(t, "permessage-deflate; server_no_context_takeover", func(nc net.Conn, br *bufio.Reader) {
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		var ps [][]byte
		for len(ps) < 2 {
			h, p, err := dcReadClientFrame(br)
			if err != nil {
				break
			}
			if h.Op.IsControl() {
				continue
			}
			ps = append(ps, p)
		}
		got <- ps
		var hb [frames.MaxHeaderSize]byte
		n := frames.PutHeader(hb[:], frames.Header{Op: frames.OpClose, Fin: true, Length: 2})
		_, _ = nc.Write(append(hb[:n], 3, 0xe8))
		_, _, _ = dcReadClientFrame(br)
	})
	cfg := &wsconn.Config{Compression: wsconn.Compression{Enabled: true}}
	err := wsclient.Run(context.Background(), url, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[*http.Response]) error {
		for range 2 {
			if err := out.WriteText(ctx, string(msg)); err != nil {
				return err
			}
		}
		return cmpDrain(in)
	}, &wsclient.Options{Config: cfg})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	ps := waitFor(t, got, "the handler")
	if len(ps) != 2 {
		t.Fatalf("the server got %d messages, want 2", len(ps))
	}
	if b, err := cmpInflate(ps[0], nil); err != nil || !bytes.Equal(b, msg) {
		t.Fatalf("first message: %d bytes, %v", len(b), err)
	}
	if b, err := cmpInflate(ps[1], nil); err != nil || !bytes.Equal(b, msg) {
		t.Fatalf("second message (%d compressed bytes after %d) does not inflate without the first: %v", len(ps[1]), len(ps[0]), err)
	}
}
