package wsconn_test

// Adversarial checks of permessage-deflate (RFC 7692) beyond
// promises_compression_test.go, against a router-served colibri over
// loopback, with gorilla/websocket and raw frames compressed with the
// standard library as peers. Helpers (cmpServe, cmpDial, cmpCompress,
// cmpInflate, cmpInflateDist, ...) come from promises_compression_test.go.

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// TestAdvDeflateIncompressibleMessageWithinLimit: config.go says
// MaxMessageSize "is the largest message payload, in bytes, that
// Inbound.Messages assembles", and inbound.go that a message "larger than
// maxSize bytes" closes with 1009. A browser-like peer (gorilla with
// EnableCompression compresses every message) sends a random message of
// exactly the limit, and one slightly below: deflate makes incompressible
// data a few bytes longer, and colibri counts those compressed bytes
// against the same limit, so a message within the limit is refused.
func TestAdvDeflateIncompressibleMessageWithinLimit(t *testing.T) {
	const limit = 4096
	url := cmpServe(t,
		cmpRoute{path: "/messages", cfg: cmpOn(wsconn.Compression{}), h: sizesUnder(limit)},
		cmpRoute{path: "/frames", cfg: wsconn.Config{MaxMessageSize: limit, Compression: wsconn.Compression{Enabled: true}},
			h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
				for f := range in.Frames() {
					if err := out.WriteText(ctx, fmt.Sprintf("%v %d", messages.Kind(f.Op), len(f.Payload)), wsconn.Uncompressed); err != nil {
						return err
					}
				}
				return in.Err()
			}})
	for _, path := range []string{"/messages", "/frames"} {
		for _, n := range []int{limit, limit - 1, limit - 4} {
			t.Run(fmt.Sprint(path, " ", n), func(t *testing.T) {
				d := gorilla.Dialer{EnableCompression: true, HandshakeTimeout: 5 * time.Second}
				c, resp, err := d.Dial(url+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
					t.Fatal("not negotiated")
				}
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				msg := cmpRandom(uint64(n), n)
				if err := c.WriteMessage(gorilla.BinaryMessage, msg); err != nil {
					t.Fatal(err)
				}
				_, got, err := c.ReadMessage()
				if err != nil {
					t.Fatalf("a %d-byte message against a %d-byte limit (%d bytes compressed): %v",
						n, limit, len(cmpCompress(msg)), err)
				}
				if want := fmt.Sprintf("%v %d", messages.KindBinary, n); string(got) != want {
					t.Fatalf("server saw %q, want %q", got, want)
				}
			})
		}
	}
}

// TestAdvDeflateEmptyAndDegenerateMessages: RFC 7692 §7.2.3.6 (an empty
// compressed message is the single byte 0x00), a compressed message whose
// first fragment is empty, and one ended with a BFINAL block (§7.2.3.4)
// inflate to what was compressed. Data after which the appended
// 00 00 ff ff (§7.2.2) does not complete a stored block (an empty payload,
// a payload that kept its own tail, complete empty blocks only) is not
// valid DEFLATE and closes with 1007. The connection stays healthy after
// the valid ones.
func TestAdvDeflateEmptyAndDegenerateMessages(t *testing.T) {
	url := cmpServe(t, cmpRoute{path: "/", cfg: cmpOn(wsconn.Compression{}), h: sizesUnder(0)})
	text := []byte(strings.Repeat("degenerate but valid; ", 30))
	withTail := func(p []byte) []byte {
		var b bytes.Buffer
		fw, _ := flate.NewWriter(&b, flate.BestSpeed)
		_, _ = fw.Write(p)
		_ = fw.Flush()
		return b.Bytes() // 00 00 ff ff kept
	}
	final := func(p []byte) []byte {
		var b bytes.Buffer
		fw, _ := flate.NewWriter(&b, flate.BestSpeed)
		_, _ = fw.Write(p)
		_ = fw.Close() // a final block, no sync flush
		return b.Bytes()
	}
	tests := []struct {
		name string
		send func(c *cmpRaw)
		size int
	}{
		{"empty payload with RSV1", func(c *cmpRaw) { c.send(frames.OpText, true, frames.Rsv1, nil) }, -1},
		{"single 0x00 byte", func(c *cmpRaw) { c.send(frames.OpBinary, true, frames.Rsv1, []byte{0x00}) }, 0},
		{"empty first fragment", func(c *cmpRaw) {
			z := cmpCompress(text)
			c.send(frames.OpText, false, frames.Rsv1, nil)
			c.send(frames.OpContinuation, false, 0, z[:1])
			c.send(frames.OpContinuation, false, 0, nil)
			c.send(frames.OpContinuation, true, 0, z[1:])
		}, len(text)},
		{"sync-flush tail kept", func(c *cmpRaw) { c.send(frames.OpText, true, frames.Rsv1, withTail(text)) }, -1},
		{"tail split across fragments", func(c *cmpRaw) {
			z := withTail(text)
			c.send(frames.OpText, false, frames.Rsv1, z[:len(z)-2])
			c.send(frames.OpContinuation, true, 0, z[len(z)-2:])
		}, -1},
		{"BFINAL block", func(c *cmpRaw) { c.send(frames.OpText, true, frames.Rsv1, final(text)) }, len(text)},
		{"empty stored blocks only", func(c *cmpRaw) { c.send(frames.OpBinary, true, frames.Rsv1, cmpEmptyBlocks(10)) }, -1},
		{"tail stripped, fragmented at the end", func(c *cmpRaw) {
			z := cmpCompress(text)
			c.send(frames.OpText, false, frames.Rsv1, z[:len(z)-1])
			c.send(frames.OpContinuation, true, 0, z[len(z)-1:])
		}, len(text)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cmpDial(t, url+"/", "permessage-deflate")
			tt.send(c)
			if tt.size < 0 {
				c.expectClose(frames.CloseInvalidPayload)
				return
			}
			_, p := c.readMessage()
			if !strings.HasSuffix(string(p), fmt.Sprintf(" %d", tt.size)) {
				t.Fatalf("server saw %q, want %d bytes", p, tt.size)
			}
			// The connection goes on.
			c.send(frames.OpText, true, frames.Rsv1, cmpCompress(text))
			if _, p := c.readMessage(); string(p) != fmt.Sprintf("%v %d", messages.KindText, len(text)) {
				t.Fatalf("next message: server saw %q", p)
			}
			c.closeNormally()
		})
	}
}

// TestAdvDeflateNewMessageInsideCompressedOne: RFC 6455 §5.4: a data frame
// that is not a continuation while a (compressed) message is open fails
// the connection with 1002, whichever loop reads; so does a continuation
// with no message open (RSV1 or not).
func TestAdvDeflateNewMessageInsideCompressedOne(t *testing.T) {
	frameLoop := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for range in.Frames() {
		}
		return in.Err()
	}
	url := cmpServe(t,
		cmpRoute{path: "/messages", cfg: cmpOn(wsconn.Compression{}), h: sizesUnder(0)},
		cmpRoute{path: "/frames", cfg: cmpOn(wsconn.Compression{}), h: frameLoop})
	z := cmpCompress([]byte(strings.Repeat("open message ", 50)))
	tests := []struct {
		name string
		send func(c *cmpRaw)
	}{
		{"text inside compressed", func(c *cmpRaw) {
			c.send(frames.OpText, false, frames.Rsv1, z[:4])
			c.send(frames.OpText, true, 0, []byte("x"))
		}},
		{"compressed binary inside compressed", func(c *cmpRaw) {
			c.send(frames.OpBinary, false, frames.Rsv1, z[:4])
			c.send(frames.OpBinary, true, frames.Rsv1, z)
		}},
		{"continuation without a message", func(c *cmpRaw) { c.send(frames.OpContinuation, true, 0, z) }},
	}
	for _, path := range []string{"/messages", "/frames"} {
		for _, tt := range tests {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				c := cmpDial(t, url+path, "permessage-deflate")
				tt.send(c)
				c.expectClose(frames.CloseProtocolError)
			})
		}
	}
}

// TestAdvDeflateBombBoundedInEveryLoop: a bomb (64 MiB of zeros, about
// 64 KiB compressed), sent in fragments, against a 1 MiB limit closes
// with 1009 from the Frames loop and with context takeover on (the
// peer's window kept), without allocating much more than the limit.
func TestAdvDeflateBombBoundedInEveryLoop(t *testing.T) {
	frameLoop := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for range in.Frames() {
		}
		return in.Err()
	}
	const limit = 1 << 20
	url := cmpServe(t,
		cmpRoute{path: "/frames", cfg: wsconn.Config{MaxMessageSize: limit, CloseTimeout: 500 * time.Millisecond, Compression: wsconn.Compression{Enabled: true}}, h: frameLoop},
		cmpRoute{path: "/takeover", cfg: wsconn.Config{MaxMessageSize: limit, CloseTimeout: 500 * time.Millisecond, Compression: wsconn.Compression{Enabled: true, ContextTakeover: true}}, h: sizesUnder(0)})
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	zero := make([]byte, 1<<20)
	for range 64 {
		_, _ = fw.Write(zero)
	}
	_ = fw.Flush()
	bomb := b.Bytes()[:b.Len()-4]
	if len(bomb) > 128<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	for _, path := range []string{"/frames", "/takeover"} {
		t.Run(path, func(t *testing.T) {
			c := cmpDial(t, url+path, "permessage-deflate")
			if path == "/takeover" {
				// A first message, so that the window is in use.
				c.send(frames.OpText, true, frames.Rsv1, cmpCompress([]byte(strings.Repeat("w", 1000))))
				if _, p := c.readMessage(); string(p) != "text 1000" {
					t.Fatalf("first message: %q", p)
				}
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			// In fragments of 8 KiB; the server may close before all are sent.
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				op, rsv := frames.OpBinary, frames.Rsv1
				for z := bomb; ; {
					n := min(len(z), 8<<10)
					h := frames.Header{Op: op, Fin: n == len(z), Rsv: rsv}
					if _, err := c.nc.Write(maskedFrame(h, z[:n])); err != nil || n == len(z) {
						return
					}
					z, op, rsv = z[n:], frames.OpContinuation, 0
				}
			}()
			c.expectClose(frames.CloseMessageTooBig)
			runtime.ReadMemStats(&after)
			_ = c.nc.Close()
			<-sent
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 6*limit {
				t.Fatalf("allocated %d bytes inflating a 64 MiB bomb against a %d-byte limit", grew, limit)
			}
		})
	}
}

// TestAdvDeflateWriterHonoursWindowBits: RFC 7692 §7.1.2.1: with
// server_max_window_bits=N the server must not refer further back than
// 2^N bytes. The existing test checks whole messages; a message streamed
// with out.Writer, in small writes, with and without context takeover,
// must keep to the window too, and inflate to what was written.
func TestAdvDeflateWriterHonoursWindowBits(t *testing.T) {
	msgs := [][]byte{cmpTempting(21, 40000), cmpTempting(22, 20000)}
	stream := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for _, m := range msgs {
			w, err := out.Writer(ctx, messages.KindBinary)
			if err != nil {
				return err
			}
			for k := 0; k < len(m); k += 777 {
				if _, err := w.Write(m[k:min(k+777, len(m))]); err != nil {
					return err
				}
			}
			if err := w.Close(); err != nil {
				return err
			}
		}
		return cmpDrain(in)
	}
	url := cmpServe(t,
		cmpRoute{path: "/reset", cfg: wsconn.Config{FragmentSize: 1000, Compression: wsconn.Compression{Enabled: true}}, h: stream},
		cmpRoute{path: "/takeover", cfg: wsconn.Config{FragmentSize: 1000, Compression: wsconn.Compression{Enabled: true, ContextTakeover: true}}, h: stream})
	for _, path := range []string{"/reset", "/takeover"} {
		for _, bits := range []int{8, 9, 12} {
			t.Run(fmt.Sprint(path, " ", bits), func(t *testing.T) {
				c := cmpDial(t, url+path, fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits))
				maxDist := cmpReadWindowed(t, c, msgs, path == "/takeover")
				if maxDist > 1<<bits {
					t.Errorf("a back reference %d bytes back with a %d-byte window", maxDist, 1<<bits)
				}
				c.closeNormally()
			})
		}
	}
}

// TestAdvDeflateEmptyStreamedMessage: a Writer closed without a write
// sends a compressed empty message that gorilla (and the standard
// library) inflate to nothing; the next message is intact.
func TestAdvDeflateEmptyStreamedMessage(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		t.Run(fmt.Sprint("takeover=", takeover), func(t *testing.T) {
			url := cmpServe(t, cmpRoute{path: "/", cfg: cmpOn(wsconn.Compression{ContextTakeover: takeover}),
				h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
					for range 2 {
						w, err := out.Writer(ctx, messages.KindText)
						if err != nil {
							return err
						}
						if err := w.Close(); err != nil {
							return err
						}
					}
					if err := out.WriteText(ctx, strings.Repeat("after the empty ones ", 30)); err != nil {
						return err
					}
					return cmpDrain(in)
				}})
			c := dialGorillaDeflate(t, url+"/")
			for i, want := range []string{"", "", strings.Repeat("after the empty ones ", 30)} {
				typ, r, err := c.NextReader()
				if err != nil || typ != gorilla.TextMessage {
					t.Fatalf("message %d: type %d, %v", i, typ, err)
				}
				got, err := io.ReadAll(r)
				if err != nil || string(got) != want {
					t.Fatalf("message %d: %q, %v", i, got, err)
				}
			}
			_ = c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, ""), time.Now().Add(5*time.Second))
			if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, 1000) {
				t.Fatalf("close: %v", err)
			}
		})
	}
}

// TestAdvDeflateContextTakeoverAcrossManyMessages: gorilla (context
// takeover off on its side, as it always is) and the server with
// ContextTakeover on exchange 200 similar messages in both directions;
// every one arrives intact (the windows stay in step).
func TestAdvDeflateContextTakeoverAcrossManyMessages(t *testing.T) {
	url := cmpServe(t, cmpRoute{path: "/", cfg: cmpOn(wsconn.Compression{ContextTakeover: true, Threshold: 1}), h: echo})
	c := cmpDial(t, url+"/", "permessage-deflate")
	d := newCmpDeflater()
	var hist []byte
	for i := range 200 {
		m := fmt.Appendf(nil, "message %d: %s", i, cmpLetters(uint64(i%7), 300+i))
		c.send(frames.OpText, true, frames.Rsv1, d.message(m))
		h, p := c.readMessage()
		if h.Rsv != frames.Rsv1 {
			t.Fatalf("message %d: echo not compressed", i)
		}
		got, err := cmpInflate(p, hist)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("message %d: echo inflates to %d bytes, %v", i, len(got), err)
		}
		hist = append(hist, got...)
		if len(hist) > 1<<15 {
			hist = hist[len(hist)-1<<15:]
		}
	}
	c.closeNormally()
}
