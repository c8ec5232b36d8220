package wsconn_test

// The promises of docs/compression.md (and the compression rows of
// docs/configuration.md) that other tests leave open, each kept over a
// loopback socket against a router-served colibri, with clients colibri
// shares no code with: raw frames compressed and inflated with the
// standard library's compress/flate, gorilla/websocket and
// coder/websocket.

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// ---- server ----

type cmpRoute struct {
	path string
	cfg  wsconn.Config
	h    wsconn.Handler[struct{}]
}

// cmpServe serves routes with a colibri router on a loopback port and
// returns the server's ws:// base URL. Connections are shut down at
// cleanup, after the clients (registered later) are gone.
func cmpServe(t *testing.T, routes ...cmpRoute) string {
	t.Helper()
	r := router.New()
	for _, rt := range routes {
		cfg := rt.cfg
		if cfg.Logger == nil {
			cfg.Logger = slog.New(slog.DiscardHandler)
		}
		router.WS(r, rt.path, nil, rt.h, router.WithConfig(cfg))
	}
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := r.Shutdown(ctx); err != nil {
			t.Errorf("router shutdown: %v", err)
		}
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func cmpOn(c wsconn.Compression) wsconn.Config {
	c.Enabled = true
	return wsconn.Config{Compression: c}
}

// cmpDrain reads until the peer closes.
func cmpDrain(in *wsconn.Inbound) error {
	for range in.Messages(0) {
	}
	return in.Err()
}

// ---- raw client ----

// cmpRaw is a raw client with the server's answer to its offers.
type cmpRaw struct {
	*rawClient
	resp *http.Response
}

// cmpHandshake sends an upgrade request to url (ws://host/path) with one
// Sec-WebSocket-Extensions line per offer and returns the client with
// the server's response, whatever its status.
func cmpHandshake(t *testing.T, url string, offers ...string) *cmpRaw {
	t.Helper()
	var h http.Header
	if len(offers) > 0 {
		h = http.Header{"Sec-Websocket-Extensions": offers}
	}
	c, resp := handshakeRaw(t, url, h)
	return &cmpRaw{c, resp}
}

// cmpDial is cmpHandshake that insists on a 101.
func cmpDial(t *testing.T, url string, offers ...string) *cmpRaw {
	t.Helper()
	c := cmpHandshake(t, url, offers...)
	if c.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake with %q: status %d", offers, c.resp.StatusCode)
	}
	return c
}

// answer is the server's Sec-WebSocket-Extensions, "" when none.
func (c *cmpRaw) answer() string {
	return strings.Join(c.resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
}

func (c *cmpRaw) send(op frames.Opcode, fin bool, rsv byte, payload []byte) {
	c.t.Helper()
	c.frameRsv(op, fin, rsv, payload)
}

// readMessage reads the frames of one data message, checking that only
// the first may carry RSV1, and returns the first header and the joined
// payload.
func (c *cmpRaw) readMessage() (frames.Header, []byte) {
	c.t.Helper()
	first, p := c.read()
	for first.Op.IsControl() {
		first, p = c.read()
	}
	h := first
	for !h.Fin {
		var q []byte
		h, q = c.read()
		if h.Op.IsControl() {
			continue
		}
		if h.Op != frames.OpContinuation || h.Rsv != 0 {
			c.t.Fatalf("fragment %v with RSV %b", h.Op, h.Rsv)
		}
		p = append(p, q...)
	}
	return first, p
}

// expectClose reads until a CLOSE and checks its code.
func (c *cmpRaw) expectClose(want frames.CloseCode) {
	c.t.Helper()
	for {
		h, p := c.read()
		if h.Op != frames.OpClose {
			continue
		}
		if h.Rsv != 0 {
			c.t.Errorf("CLOSE frame with RSV %b", h.Rsv)
		}
		code, reason, err := frames.ParseClose(p)
		if err != nil || code != want {
			c.t.Fatalf("close %v %q (%v), want %v", code, reason, err, want)
		}
		return
	}
}

// closeNormally runs the closing handshake from the client's side.
func (c *cmpRaw) closeNormally() {
	c.t.Helper()
	c.send(frames.OpClose, true, 0, []byte{0x03, 0xe8})
	c.expectClose(frames.CloseNormal)
}

// ---- deflate with the standard library ----

// cmpTail ends a message for an inflater: the removed empty block and a
// final empty block (RFC 7692 §7.2.2).
var cmpTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

func cmpCompress(p []byte) []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = fw.Write(p)
	_ = fw.Flush()
	return b.Bytes()[:b.Len()-4]
}

func cmpInflate(p, dict []byte) ([]byte, error) {
	fr := flate.NewReaderDict(io.MultiReader(bytes.NewReader(p), bytes.NewReader(cmpTail)), dict)
	return io.ReadAll(fr)
}

// cmpDeflater compresses messages with context takeover: one stream.
type cmpDeflater struct {
	b  bytes.Buffer
	fw *flate.Writer
}

func newCmpDeflater() *cmpDeflater {
	d := &cmpDeflater{}
	d.fw, _ = flate.NewWriter(&d.b, flate.BestSpeed)
	return d
}

func (d *cmpDeflater) message(p []byte) []byte {
	d.b.Reset()
	_, _ = d.fw.Write(p)
	_ = d.fw.Flush()
	return append([]byte(nil), d.b.Bytes()[:d.b.Len()-4]...)
}

// cmpLetters returns n pseudo-random letters: text that compresses by
// itself only to about 5/8.
func cmpLetters(seed uint64, n int) []byte {
	r := mrand.New(mrand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(r.IntN(26))
	}
	return b
}

func cmpRandom(seed uint64, n int) []byte {
	r := mrand.New(mrand.NewPCG(seed, 9))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// cmpEmptyBlocks returns n empty non-final stored blocks: compressed
// bytes that inflate to nothing.
func cmpEmptyBlocks(n int) []byte {
	return bytes.Repeat([]byte{0x00, 0x00, 0x00, 0xff, 0xff}, n)
}

// cmpNorm puts an extension answer in a canonical form: parameters
// sorted, spaces trimmed.
func cmpNorm(s string) string {
	if s == "" {
		return ""
	}
	parts := strings.Split(s, ";")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	sort.Strings(parts[1:])
	return strings.Join(parts, "; ")
}

// ---- negotiation ----

// TestPromiseCompressionOffByDefault: without Compression.Enabled an offer
// is not answered, and RSV1 is then a protocol error (1002).
func TestPromiseCompressionOffByDefault(t *testing.T) {
	url := cmpServe(t,
		cmpRoute{path: "/zero", h: echo},
		cmpRoute{path: "/disabled", cfg: wsconn.Config{Compression: wsconn.Compression{Level: 9, ContextTakeover: true}}, h: echo})
	for _, path := range []string{"/zero", "/disabled"} {
		t.Run(path, func(t *testing.T) {
			c := cmpDial(t, url+path, "permessage-deflate; client_max_window_bits")
			if got := c.answer(); got != "" {
				t.Fatalf("compression off, but the offer was answered %q", got)
			}
			c.send(frames.OpText, true, frames.Rsv1, cmpCompress([]byte(strings.Repeat("x", 400))))
			c.expectClose(frames.CloseProtocolError)
		})
	}
}

// TestPromiseCompressionNegotiation: the answers compression.md
// (Negotiation) promises, through the router's handshake; declined offers
// never fail the handshake. Every accepted connection then carries a
// compressed message each way.
func TestPromiseCompressionNegotiation(t *testing.T) {
	url := cmpServe(t,
		cmpRoute{path: "/reset", cfg: cmpOn(wsconn.Compression{}), h: echo},
		cmpRoute{path: "/takeover", cfg: cmpOn(wsconn.Compression{ContextTakeover: true}), h: echo})
	const both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	tests := []struct {
		path   string
		offers []string
		want   string // "" declined
	}{
		{"/reset", []string{"permessage-deflate"}, both},
		{"/reset", []string{"permessage-deflate; server_no_context_takeover"}, both},
		{"/reset", []string{"permessage-deflate; client_no_context_takeover"}, both},
		{"/reset", []string{"permessage-deflate; client_max_window_bits"}, both},
		{"/reset", []string{"permessage-deflate; client_max_window_bits=9"}, both},
		{"/reset", []string{"permessage-deflate; server_max_window_bits=8"}, both + "; server_max_window_bits=8"},
		{"/reset", []string{"permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"}, both + "; server_max_window_bits=12"},
		{"/reset", []string{"permessage-deflate; server_max_window_bits=15"}, both + "; server_max_window_bits=15"},
		{"/reset", []string{`permessage-deflate; server_max_window_bits="10"`}, both + "; server_max_window_bits=10"},
		// Declined, never failing the handshake.
		{"/reset", []string{"permessage-deflate; server_max_window_bits=7"}, ""},
		{"/reset", []string{"permessage-deflate; server_max_window_bits=16"}, ""},
		{"/reset", []string{"permessage-deflate; server_max_window_bits=08"}, ""},
		{"/reset", []string{"permessage-deflate; server_max_window_bits"}, ""},
		{"/reset", []string{"permessage-deflate; client_max_window_bits=16"}, ""},
		{"/reset", []string{"permessage-deflate; server_no_context_takeover=1"}, ""},
		{"/reset", []string{"permessage-deflate; mystery"}, ""},
		{"/reset", []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, ""},
		{"/reset", []string{"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"}, ""},
		{"/reset", []string{"x-webkit-deflate-frame"}, ""},
		// The first offer it can honour.
		{"/reset", []string{"permessage-deflate; mystery, permessage-deflate; server_max_window_bits=10"}, both + "; server_max_window_bits=10"},
		{"/reset", []string{"permessage-deflate; server_max_window_bits=99", "permessage-deflate; server_max_window_bits=9"}, both + "; server_max_window_bits=9"},
		{"/reset", []string{"x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=11, permessage-deflate"}, both + "; server_max_window_bits=11"},
		{"/reset", []string{"permessage-deflate, permessage-deflate; server_max_window_bits=11"}, both},
		// ContextTakeover on.
		{"/takeover", []string{"permessage-deflate"}, "permessage-deflate"},
		{"/takeover", []string{"permessage-deflate; client_max_window_bits"}, "permessage-deflate"},
		{"/takeover", []string{"permessage-deflate; server_no_context_takeover"}, "permessage-deflate; server_no_context_takeover"},
		{"/takeover", []string{"permessage-deflate; client_no_context_takeover"}, "permessage-deflate; client_no_context_takeover"},
		{"/takeover", []string{"permessage-deflate; server_max_window_bits=9"}, "permessage-deflate; server_max_window_bits=9"},
	}
	text := []byte(strings.Repeat("negotiated and compressed; ", 40))
	for _, tt := range tests {
		t.Run(tt.path+" "+strings.Join(tt.offers, " | "), func(t *testing.T) {
			c := cmpHandshake(t, url+tt.path, tt.offers...)
			if c.resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("offer failed the handshake: status %d", c.resp.StatusCode)
			}
			if got := cmpNorm(c.answer()); got != cmpNorm(tt.want) {
				t.Fatalf("answer %q, want %q", c.answer(), tt.want)
			}
			if tt.want == "" {
				c.send(frames.OpText, true, 0, text)
				h, p := c.readMessage()
				if h.Rsv != 0 || !bytes.Equal(p, text) {
					t.Fatalf("declined, yet the echo has RSV %b and %d bytes", h.Rsv, len(p))
				}
			} else {
				c.send(frames.OpText, true, frames.Rsv1, cmpCompress(text))
				h, p := c.readMessage()
				if h.Rsv != frames.Rsv1 {
					t.Fatalf("echo of %d bytes not compressed", len(text))
				}
				if got, err := cmpInflate(p, nil); err != nil || !bytes.Equal(got, text) {
					t.Fatalf("echo inflates to %d bytes, %v", len(got), err)
				}
			}
			c.closeNormally()
		})
	}
}

// ---- outbound ----

// TestPromiseCompressionWhatIsCompressed: messages at or above Threshold
// (default 256) carry RSV1, shorter ones and Uncompressed ones do not, and
// control frames never do.
func TestPromiseCompressionWhatIsCompressed(t *testing.T) {
	long := strings.Repeat("r", frames.MaxCloseReason)
	sender := func(sizes []int) wsconn.Handler[struct{}] {
		return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for _, n := range sizes {
				if err := out.WriteText(ctx, strings.Repeat("a", n)); err != nil {
					return err
				}
				if err := out.WriteBinary(ctx, bytes.Repeat([]byte{'b'}, n)); err != nil {
					return err
				}
				if err := out.WriteMessage(ctx, messages.Text(strings.Repeat("m", n))); err != nil {
					return err
				}
			}
			big := bytes.Repeat([]byte("opted out "), 1000)
			if err := out.WriteBinary(ctx, big, wsconn.Uncompressed); err != nil {
				return err
			}
			if err := out.WriteText(ctx, string(big), wsconn.Uncompressed); err != nil {
				return err
			}
			w, err := out.Writer(ctx, messages.KindBinary, wsconn.Uncompressed)
			if err != nil {
				return err
			}
			if _, err := w.Write(big); err != nil {
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
			// Wait for the client's PING to be answered, then close with
			// the longest reason.
			for m := range in.Messages(0) {
				if m.Text() == "done" {
					break
				}
			}
			return &wsconn.CloseError{Code: 4000, Reason: long}
		}
	}
	url := cmpServe(t,
		cmpRoute{path: "/default", cfg: cmpOn(wsconn.Compression{}), h: sender([]int{1, 255, 256, 4000})},
		cmpRoute{path: "/t1000", cfg: cmpOn(wsconn.Compression{Threshold: 1000}), h: sender([]int{256, 999, 1000})})
	for _, tc := range []struct {
		path      string
		sizes     []int
		threshold int
	}{{"/default", []int{1, 255, 256, 4000}, 256}, {"/t1000", []int{256, 999, 1000}, 1000}} {
		t.Run(tc.path, func(t *testing.T) {
			c := cmpDial(t, url+tc.path, "permessage-deflate")
			for _, n := range tc.sizes {
				for _, want := range []struct {
					op frames.Opcode
					b  byte
				}{{frames.OpText, 'a'}, {frames.OpBinary, 'b'}, {frames.OpText, 'm'}} {
					h, p := c.readMessage()
					compressed := h.Rsv == frames.Rsv1
					if compressed != (n >= tc.threshold) {
						t.Errorf("%v message of %d bytes (threshold %d): RSV1 %v", h.Op, n, tc.threshold, compressed)
					}
					if compressed {
						var err error
						if p, err = cmpInflate(p, nil); err != nil {
							t.Fatal(err)
						}
					}
					if h.Op != want.op || !bytes.Equal(p, bytes.Repeat([]byte{want.b}, n)) {
						t.Fatalf("got %v of %d bytes, want %v of %d", h.Op, len(p), want.op, n)
					}
				}
			}
			for i := range 3 {
				h, p := c.readMessage()
				if h.Rsv != 0 || len(p) != 10000 {
					t.Errorf("Uncompressed message %d: RSV %b, %d bytes", i, h.Rsv, len(p))
				}
			}
			ping := bytes.Repeat([]byte{'p'}, frames.MaxControlPayload)
			c.send(frames.OpPing, true, 0, ping)
			h, p := c.read()
			if h.Op != frames.OpPong || h.Rsv != 0 || !bytes.Equal(p, ping) {
				t.Fatalf("answer to a PING: %v RSV %b %d bytes", h.Op, h.Rsv, len(p))
			}
			c.send(frames.OpText, true, 0, []byte("done"))
			c.expectClose(4000)
		})
	}
}

// TestPromiseCompressionFragmentsAfterCompressing: a message at or above
// the threshold is compressed whole, then cut at FragmentSize; only the
// first frame carries RSV1.
func TestPromiseCompressionFragmentsAfterCompressing(t *testing.T) {
	noise := cmpRandom(1, 20000)
	text := cmpLetters(2, 30000)
	url := cmpServe(t, cmpRoute{path: "/", cfg: wsconn.Config{FragmentSize: 512, Compression: wsconn.Compression{Enabled: true}},
		h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			if err := out.WriteBinary(ctx, noise); err != nil {
				return err
			}
			if err := out.WriteText(ctx, string(text)); err != nil {
				return err
			}
			return cmpDrain(in)
		}})
	c := cmpDial(t, url+"/", "permessage-deflate")
	for _, want := range []struct {
		op frames.Opcode
		p  []byte
	}{{frames.OpBinary, noise}, {frames.OpText, text}} {
		var joined []byte
		n := 0
		for {
			h, p := c.read()
			if len(p) > 512 {
				t.Fatalf("frame of %d bytes with FragmentSize 512", len(p))
			}
			switch {
			case n == 0 && (h.Op != want.op || h.Rsv != frames.Rsv1):
				t.Fatalf("first frame %v RSV %b", h.Op, h.Rsv)
			case n > 0 && (h.Op != frames.OpContinuation || h.Rsv != 0):
				t.Fatalf("frame %d: %v RSV %b", n, h.Op, h.Rsv)
			}
			n++
			joined = append(joined, p...)
			if h.Fin {
				break
			}
		}
		if n < 2 {
			t.Fatalf("a %d-byte compressed message in one frame", len(joined))
		}
		if got, err := cmpInflate(joined, nil); err != nil || !bytes.Equal(got, want.p) {
			t.Fatalf("%d fragments inflate to %d bytes, %v", n, len(got), err)
		}
	}
	c.closeNormally()
}

// TestPromiseCompressionWriterStreams: out.Writer sends compressed
// fragments while the message is still being written, the first with
// RSV1, and Uncompressed turns that off.
func TestPromiseCompressionWriterStreams(t *testing.T) {
	data := cmpRandom(3, 128<<10)
	// Buffered: the client goes on reading once it signalled.
	proceed := make(chan struct{}, 2)
	url := cmpServe(t, cmpRoute{path: "/", cfg: wsconn.Config{FragmentSize: 1024, Compression: wsconn.Compression{Enabled: true}},
		h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for _, opts := range [][]wsconn.WriteOption{nil, {wsconn.Uncompressed}} {
				w, err := out.Writer(ctx, messages.KindBinary, opts...)
				if err != nil {
					return err
				}
				if _, err := w.Write(data); err != nil {
					return err
				}
				select {
				case <-proceed:
				case <-ctx.Done():
					return ctx.Err()
				}
				if err := w.Close(); err != nil {
					return err
				}
			}
			return cmpDrain(in)
		}})
	c := cmpDial(t, url+"/", "permessage-deflate")
	for i, rsv := range []byte{frames.Rsv1, 0} {
		h, first := c.read()
		if h.Op != frames.OpBinary || h.Rsv != rsv || h.Fin || len(first) > 1024 {
			t.Fatalf("message %d: first frame %v RSV %b FIN %v, %d bytes", i, h.Op, h.Rsv, h.Fin, len(first))
		}
		// The first fragment arrived before Close was called.
		proceed <- struct{}{}
		joined := first
		for !h.Fin {
			var p []byte
			h, p = c.read()
			if h.Op != frames.OpContinuation || h.Rsv != 0 || len(p) > 1024 {
				t.Fatalf("message %d: %v RSV %b, %d bytes", i, h.Op, h.Rsv, len(p))
			}
			joined = append(joined, p...)
		}
		if rsv != 0 {
			var err error
			if joined, err = cmpInflate(joined, nil); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(joined, data) {
			t.Fatalf("message %d: %d bytes, want %d", i, len(joined), len(data))
		}
	}
	c.closeNormally()
}

// TestPromiseCompressionContextTakeoverOutbound: by default, and when the
// offer asks for server_no_context_takeover, each message inflates on
// its own; with ContextTakeover on, a repeated message refers back to
// the one before.
func TestPromiseCompressionContextTakeoverOutbound(t *testing.T) {
	msg := cmpLetters(4, 3000)
	sendTwice := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for range 2 {
			if err := out.WriteText(ctx, string(msg)); err != nil {
				return err
			}
		}
		return cmpDrain(in)
	}
	url := cmpServe(t,
		cmpRoute{path: "/reset", cfg: cmpOn(wsconn.Compression{}), h: sendTwice},
		cmpRoute{path: "/takeover", cfg: cmpOn(wsconn.Compression{ContextTakeover: true}), h: sendTwice})
	for _, tc := range []struct {
		path, offer string
		takeover    bool
	}{
		{"/reset", "permessage-deflate", false},
		{"/takeover", "permessage-deflate; server_no_context_takeover", false},
		{"/takeover", "permessage-deflate", true},
	} {
		t.Run(tc.path+" "+tc.offer, func(t *testing.T) {
			c := cmpDial(t, url+tc.path, tc.offer)
			_, first := c.readMessage()
			_, second := c.readMessage()
			if got, err := cmpInflate(first, nil); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("first message: %d bytes, %v", len(got), err)
			}
			alone, errAlone := cmpInflate(second, nil)
			withDict, errDict := cmpInflate(second, msg)
			if tc.takeover {
				if errDict != nil || !bytes.Equal(withDict, msg) {
					t.Fatalf("second message with the first as window: %d bytes, %v", len(withDict), errDict)
				}
				if len(second)*4 > len(first) {
					t.Errorf("with context takeover the repeat takes %d bytes after %d", len(second), len(first))
				}
			} else if errAlone != nil || !bytes.Equal(alone, msg) {
				t.Fatalf("without context takeover the second message does not inflate alone: %d bytes, %v", len(alone), errAlone)
			}
			c.closeNormally()
		})
	}
}

// TestPromiseCompressionContextTakeoverInbound: with ContextTakeover on
// and an offer without client_no_context_takeover, colibri keeps the
// client's window across messages, whichever loop reads them.
func TestPromiseCompressionContextTakeoverInbound(t *testing.T) {
	report := func(ctx context.Context, out *wsconn.Outbound, p []byte) error {
		return out.WriteBinary(ctx, p, wsconn.Uncompressed)
	}
	url := cmpServe(t,
		cmpRoute{path: "/messages", cfg: cmpOn(wsconn.Compression{ContextTakeover: true}), h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for m := range in.Messages(0) {
				if err := report(ctx, out, m.Payload); err != nil {
					return err
				}
			}
			return in.Err()
		}},
		cmpRoute{path: "/frames", cfg: cmpOn(wsconn.Compression{ContextTakeover: true}), h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for f := range in.Frames() {
				if err := report(ctx, out, f.Payload); err != nil {
					return err
				}
			}
			return in.Err()
		}},
		cmpRoute{path: "/readers", cfg: cmpOn(wsconn.Compression{ContextTakeover: true}), h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for i := 0; ; i++ {
				var got []byte
				var err error
				yielded := false
				for _, r := range in.Readers() {
					yielded = true
					if i%2 == 1 {
						// Read nothing: what is discarded still feeds the window.
						break
					}
					got, err = io.ReadAll(r)
					break
				}
				if !yielded || err != nil {
					return errors.Join(in.Err(), err)
				}
				if i%2 == 1 {
					got = []byte("skipped")
				}
				if err := report(ctx, out, got); err != nil {
					return err
				}
			}
		}})
	msg := cmpLetters(5, 4000)
	for _, path := range []string{"/messages", "/frames", "/readers"} {
		t.Run(path, func(t *testing.T) {
			c := cmpDial(t, url+path, "permessage-deflate")
			if got := cmpNorm(c.answer()); got != "permessage-deflate" {
				t.Fatalf("answer %q", got)
			}
			d := newCmpDeflater()
			for i := range 4 {
				m := append([]byte(fmt.Sprint(i)), msg...)
				z := d.message(m)
				if i > 0 && len(z)*4 > len(msg) {
					t.Fatalf("the client's own compression did not use its window: %d bytes", len(z))
				}
				// In three fragments, to exercise the reading across frames.
				third := len(z) / 3
				c.send(frames.OpText, false, frames.Rsv1, z[:third])
				c.send(frames.OpContinuation, false, 0, z[third:2*third])
				c.send(frames.OpContinuation, true, 0, z[2*third:])
				_, got := c.readMessage()
				want := m
				if path == "/readers" && i%2 == 1 {
					want = []byte("skipped")
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("message %d: server read %d bytes %.20q, want %d", i, len(got), got, len(want))
				}
			}
			c.closeNormally()
		})
	}
}

// TestPromiseCompressionLevel: level 9 compresses smaller than level 1;
// under a window below 15 bits the windowed encoder ignores Level.
func TestPromiseCompressionLevel(t *testing.T) {
	sample, err := os.ReadFile("../testdata/chat.json")
	if err != nil {
		t.Fatal(err)
	}
	send := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		if err := out.WriteBinary(ctx, sample); err != nil {
			return err
		}
		return cmpDrain(in)
	}
	url := cmpServe(t,
		cmpRoute{path: "/l1", cfg: cmpOn(wsconn.Compression{}), h: send},
		cmpRoute{path: "/l9", cfg: cmpOn(wsconn.Compression{Level: 9}), h: send})
	size := func(path, offer string) []byte {
		c := cmpDial(t, url+path, offer)
		h, p := c.readMessage()
		if h.Rsv != frames.Rsv1 {
			t.Fatalf("%s: not compressed", path)
		}
		if got, err := cmpInflate(p, nil); err != nil || !bytes.Equal(got, sample) {
			t.Fatalf("%s: inflates to %d bytes, %v", path, len(got), err)
		}
		c.closeNormally()
		return p
	}
	l1, l9 := size("/l1", "permessage-deflate"), size("/l9", "permessage-deflate")
	if len(l9) >= len(l1) {
		t.Errorf("level 9 gives %d bytes, level 1 %d", len(l9), len(l1))
	}
	w1 := size("/l1", "permessage-deflate; server_max_window_bits=12")
	w9 := size("/l9", "permessage-deflate; server_max_window_bits=12")
	if !bytes.Equal(w1, w9) {
		t.Errorf("with a 12-bit window, Level 1 and 9 differ: %d and %d bytes", len(w1), len(w9))
	}
}

// TestPromiseCompressionWindowBits: with server_max_window_bits=N colibri
// never refers further back than 2^N bytes, within a message or, with
// context takeover, across messages (RFC 7692 §7.1.2.1).
func TestPromiseCompressionWindowBits(t *testing.T) {
	msgs := [][]byte{cmpTempting(6, 40000), cmpTempting(7, 20000)}
	send := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for _, m := range msgs {
			if err := out.WriteBinary(ctx, m); err != nil {
				return err
			}
		}
		return cmpDrain(in)
	}
	url := cmpServe(t,
		cmpRoute{path: "/reset", cfg: cmpOn(wsconn.Compression{}), h: send},
		cmpRoute{path: "/takeover", cfg: cmpOn(wsconn.Compression{ContextTakeover: true}), h: send})
	for _, path := range []string{"/reset", "/takeover"} {
		for bits := 8; bits <= 15; bits++ {
			t.Run(fmt.Sprint(path, " ", bits), func(t *testing.T) {
				c := cmpDial(t, url+path, fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits))
				maxDist := cmpReadWindowed(t, c, msgs, path == "/takeover")
				if maxDist > 1<<bits {
					t.Errorf("a back reference %d bytes back with a %d-byte window", maxDist, 1<<bits)
				}
				if bits == 15 && maxDist <= 1<<12 {
					t.Errorf("the messages did not tempt the compressor: longest distance %d", maxDist)
				}
				c.closeNormally()
			})
		}
	}
}

// cmpReadWindowed reads msgs back from c, each compressed, inflating
// each after the ones before when takeover is set, and returns the longest
// back reference the server made.
func cmpReadWindowed(t *testing.T, c *cmpRaw, msgs [][]byte, takeover bool) int {
	t.Helper()
	var hist []byte
	maxDist := 0
	for i, m := range msgs {
		h, p := c.readMessage()
		if h.Rsv != frames.Rsv1 {
			t.Fatalf("message %d not compressed", i)
		}
		if !takeover {
			hist = nil
		}
		out, d, err := cmpInflateDist(append(p, cmpTail...), hist)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(out[len(hist):], m) {
			t.Fatalf("message %d inflates to %d bytes, want %d", i, len(out)-len(hist), len(m))
		}
		hist = out
		maxDist = max(maxDist, d)
	}
	return maxDist
}

// cmpTempting returns letters in 64-byte chunks, many of them copies of
// an earlier chunk at distances from 200 bytes to 32 KiB.
func cmpTempting(seed uint64, n int) []byte {
	r := mrand.New(mrand.NewPCG(seed, 11))
	b := cmpLetters(seed, n)
	dists := []int{200, 300, 700, 1500, 4000, 9000, 20000, 32000}
	for i, k := 0, 0; i+64 <= n; i, k = i+64, k+1 {
		d := dists[k%len(dists)]
		if r.IntN(3) > 0 && i >= d {
			copy(b[i:i+64], b[i-d:i-d+64])
		}
	}
	return b
}

// ---- inbound ----

// TestPromiseCompressionInboundLimits: a compressed message stops at the
// message limit (the Messages argument, or MaxMessageSize for Frames) with
// 1009, a message of exactly the limit passes, the compressed bytes count
// against the same limit, Frames yields a compressed message as one whole
// frame, and Readers streams it with no limit.
func TestPromiseCompressionInboundLimits(t *testing.T) {
	const limit = 4096
	sizes := func(ctx context.Context, out *wsconn.Outbound, n int, fin bool, rsv byte) error {
		return out.WriteText(ctx, fmt.Sprintf("%d %v %d", n, fin, rsv))
	}
	url := cmpServe(t,
		cmpRoute{path: "/messages", cfg: cmpOn(wsconn.Compression{}), h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for m := range in.Messages(limit) {
				if err := sizes(ctx, out, len(m.Payload), true, 0); err != nil {
					return err
				}
			}
			return in.Err()
		}},
		cmpRoute{path: "/frames", cfg: wsconn.Config{MaxMessageSize: limit, Compression: wsconn.Compression{Enabled: true}}, h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for f := range in.Frames() {
				if err := sizes(ctx, out, len(f.Payload), f.Fin, f.Rsv); err != nil {
					return err
				}
			}
			return in.Err()
		}},
		cmpRoute{path: "/readers", cfg: wsconn.Config{MaxMessageSize: 1024, Compression: wsconn.Compression{Enabled: true}}, h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for _, r := range in.Readers() {
				n, err := io.Copy(io.Discard, r)
				if err != nil {
					return err
				}
				if err := sizes(ctx, out, int(n), true, 0); err != nil {
					return err
				}
			}
			return in.Err()
		}})
	// sendFragmented sends z as a compressed message in pieces of at most
	// 1000 bytes.
	sendFragmented := func(c *cmpRaw, z []byte) {
		op, rsv := frames.OpBinary, frames.Rsv1
		for {
			n := min(len(z), 1000)
			c.send(op, n == len(z), rsv, z[:n])
			if n == len(z) {
				return
			}
			z, op, rsv = z[n:], frames.OpContinuation, 0
		}
	}
	exact := cmpCompress(bytes.Repeat([]byte("0123456789abcdef"), limit/16))
	over := cmpCompress(bytes.Repeat([]byte("0123456789abcdef"), limit/16+1))
	// Over twice the limit in compressed bytes that inflate to two.
	padded := append(cmpEmptyBlocks((2*limit+1024)/5+1), cmpCompress([]byte("hi"))...)
	for _, path := range []string{"/messages", "/frames"} {
		t.Run(path+" exactly the limit", func(t *testing.T) {
			c := cmpDial(t, url+path, "permessage-deflate")
			sendFragmented(c, exact)
			if _, p := c.readMessage(); string(p) != fmt.Sprintf("%d true 0", limit) {
				t.Fatalf("server saw %q: the message should arrive whole, inflated, as one final frame without RSV", p)
			}
			c.closeNormally()
		})
		t.Run(path+" one byte over", func(t *testing.T) {
			c := cmpDial(t, url+path, "permessage-deflate")
			sendFragmented(c, over)
			c.expectClose(frames.CloseMessageTooBig)
		})
		t.Run(path+" compressed bytes over", func(t *testing.T) {
			c := cmpDial(t, url+path, "permessage-deflate")
			sendFragmented(c, padded)
			if h, p := c.read(); h.Op != frames.OpClose {
				t.Fatalf("%d compressed bytes against a %d-byte limit (twice it plus 1 KiB for compressed bytes): no 1009, the loop got the message (%q)", len(padded), limit, p)
			} else if code, _, _ := frames.ParseClose(p); code != frames.CloseMessageTooBig {
				t.Fatalf("close %v, want 1009", code)
			}
		})
	}
	t.Run("/readers", func(t *testing.T) {
		c := cmpDial(t, url+"/readers", "permessage-deflate")
		z := cmpCompress(make([]byte, 64<<10))
		if len(z) > 1024 {
			t.Fatalf("%d compressed bytes", len(z))
		}
		c.send(frames.OpBinary, true, frames.Rsv1, z)
		if _, p := c.readMessage(); string(p) != fmt.Sprintf("%d true 0", 64<<10) {
			t.Fatalf("the Readers body read %q", p)
		}
		c.closeNormally()
	})
}

// TestPromiseCompressionInboundViolations: RSV1 anywhere but on the first
// frame of a data message closes with 1002; data that does not inflate,
// and text that is not UTF-8 once inflated, close with 1007, whichever
// loop reads.
func TestPromiseCompressionInboundViolations(t *testing.T) {
	cfg := cmpOn(wsconn.Compression{})
	url := cmpServe(t,
		cmpRoute{path: "/messages", cfg: cfg, h: echo},
		cmpRoute{path: "/frames", cfg: cfg, h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for range in.Frames() {
			}
			return in.Err()
		}},
		cmpRoute{path: "/readers", cfg: cfg, h: func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for _, r := range in.Readers() {
				if _, err := io.Copy(io.Discard, r); err != nil {
					return err
				}
			}
			return in.Err()
		}})
	good := cmpCompress([]byte(strings.Repeat("fine ", 100)))
	tests := []struct {
		name string
		send func(c *cmpRaw)
		code frames.CloseCode
	}{
		{"RSV1 on the continuation of a compressed message", func(c *cmpRaw) {
			c.send(frames.OpText, false, frames.Rsv1, good[:5])
			c.send(frames.OpContinuation, true, frames.Rsv1, good[5:])
		}, frames.CloseProtocolError},
		{"RSV1 on a CLOSE", func(c *cmpRaw) { c.send(frames.OpClose, true, frames.Rsv1, []byte{0x03, 0xe8}) }, frames.CloseProtocolError},
		{"RSV1 on a PONG inside a compressed message", func(c *cmpRaw) {
			c.send(frames.OpBinary, false, frames.Rsv1, good[:5])
			c.send(frames.OpPong, true, frames.Rsv1, nil)
		}, frames.CloseProtocolError},
		{"RSV2 on a data frame", func(c *cmpRaw) { c.send(frames.OpText, true, frames.Rsv2, good) }, frames.CloseProtocolError},
		{"RSV3 with RSV1", func(c *cmpRaw) { c.send(frames.OpText, true, frames.Rsv1|frames.Rsv3, good) }, frames.CloseProtocolError},
		{"data that does not inflate", func(c *cmpRaw) { c.send(frames.OpBinary, true, frames.Rsv1, []byte{0xff, 0xff, 0xff, 0xff}) }, frames.CloseInvalidPayload},
		{"bad text once inflated", func(c *cmpRaw) {
			c.send(frames.OpText, true, frames.Rsv1, cmpCompress([]byte(strings.Repeat("ok ", 100)+"\xc0\xaf")))
		}, frames.CloseInvalidPayload},
		{"text ending inside a code point once inflated", func(c *cmpRaw) {
			c.send(frames.OpText, true, frames.Rsv1, cmpCompress([]byte(strings.Repeat("ok ", 100)+"\xe2\x82")))
		}, frames.CloseInvalidPayload},
		{"bad text split across compressed fragments", func(c *cmpRaw) {
			z := cmpCompress(append(cmpLetters(8, 3000), 0xed, 0xa0, 0x80))
			c.send(frames.OpText, false, frames.Rsv1, z[:len(z)/2])
			c.send(frames.OpContinuation, true, 0, z[len(z)/2:])
		}, frames.CloseInvalidPayload},
	}
	for _, path := range []string{"/messages", "/frames", "/readers"} {
		for _, tt := range tests {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				c := cmpDial(t, url+path, "permessage-deflate")
				tt.send(c)
				c.expectClose(tt.code)
			})
		}
	}
}

// TestPromiseCompressionPrepared: a prepared message reaches every kind of
// connection intact: shared compressed bytes for connections that reset
// their context at the same level, its own encoding for another level, a
// smaller window or context takeover (whose context then stays in step),
// uncompressed under the threshold or without the extension.
func TestPromiseCompressionPrepared(t *testing.T) {
	outs := make(chan *wsconn.Outbound, 8)
	wait := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		outs <- out
		return cmpDrain(in)
	}
	url := cmpServe(t,
		cmpRoute{path: "/l1", cfg: cmpOn(wsconn.Compression{}), h: wait},
		cmpRoute{path: "/l9", cfg: cmpOn(wsconn.Compression{Level: 9}), h: wait},
		cmpRoute{path: "/takeover", cfg: cmpOn(wsconn.Compression{ContextTakeover: true}), h: wait})
	conns := []struct {
		path, offer string
		compressed  bool
		takeover    bool
	}{
		{"/l1", "permessage-deflate", true, false},
		{"/l1", "permessage-deflate; client_no_context_takeover", true, false},
		{"/l9", "permessage-deflate", true, false},
		{"/l1", "permessage-deflate; server_max_window_bits=9", true, false},
		{"/takeover", "permessage-deflate", true, true},
		{"/l1", "", false, false},
	}
	big := messages.Text(string(cmpTempting(9, 20000)))
	small := messages.Binary(bytes.Repeat([]byte{'s'}, 255))
	pBig, pSmall := wsconn.Prepare(big), wsconn.Prepare(small)
	ctx := context.Background()
	var clients []*cmpRaw
	for _, cc := range conns {
		var offers []string
		if cc.offer != "" {
			offers = append(offers, cc.offer)
		}
		clients = append(clients, cmpDial(t, url+cc.path, offers...))
		out := waitFor(t, outs, "the handler")
		if err := out.WritePrepared(ctx, pBig); err != nil {
			t.Fatal(err)
		}
		if n, err := out.WritePreparedBatch(ctx, []*wsconn.Prepared{pSmall, pBig, pBig}); n != 3 || err != nil {
			t.Fatalf("WritePreparedBatch: %d, %v", n, err)
		}
		if err := out.WriteMessage(ctx, big); err != nil {
			t.Fatal(err)
		}
	}
	var shared []byte
	for i, c := range clients {
		cc := conns[i]
		var hist []byte
		for j, want := range []messages.Message{big, small, big, big, big} {
			h, p := c.readMessage()
			if h.Op != want.Kind.Opcode() {
				t.Fatalf("%s %q message %d: %v", cc.path, cc.offer, j, h.Op)
			}
			wantRsv := cc.compressed && len(want.Payload) >= 256
			if (h.Rsv == frames.Rsv1) != wantRsv {
				t.Fatalf("%s %q message %d: RSV %b", cc.path, cc.offer, j, h.Rsv)
			}
			got := p
			if wantRsv {
				if i == 0 && j == 0 {
					shared = p
				}
				if i == 1 && j == 0 && !bytes.Equal(p, shared) {
					t.Errorf("two level-1 connections got different compressed bytes")
				}
				if !cc.takeover {
					hist = nil
				}
				var err error
				got, err = cmpInflate(p, hist)
				if err != nil {
					t.Fatalf("%s %q message %d: %v", cc.path, cc.offer, j, err)
				}
				hist = append(hist, got...)
			}
			if !bytes.Equal(got, want.Payload) {
				t.Fatalf("%s %q message %d: %d bytes, want %d", cc.path, cc.offer, j, len(got), len(want.Payload))
			}
		}
		c.closeNormally()
	}
}

// TestPromiseCompressionWithOtherClients: gorilla/websocket and
// coder/websocket, each compressing with its own code, exchange
// compressed messages with colibri under ContextTakeover on and off,
// with messages under and over the threshold and streamed ones.
func TestPromiseCompressionWithOtherClients(t *testing.T) {
	url := cmpServe(t,
		cmpRoute{path: "/reset", cfg: wsconn.Config{FragmentSize: 777, Compression: wsconn.Compression{Enabled: true, Level: 6}}, h: echo},
		cmpRoute{path: "/takeover", cfg: cmpOn(wsconn.Compression{ContextTakeover: true, Threshold: 1}), h: echo})
	msgs := [][]byte{[]byte("tiny"), cmpLetters(10, 255), cmpLetters(10, 256), cmpTempting(11, 50000), cmpTempting(11, 50000)}
	for _, path := range []string{"/reset", "/takeover"} {
		t.Run("gorilla "+path, func(t *testing.T) {
			d := gorilla.Dialer{EnableCompression: true, HandshakeTimeout: 10 * time.Second}
			c, resp, err := d.Dial(url+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
				t.Fatalf("not negotiated: %q", resp.Header.Get("Sec-WebSocket-Extensions"))
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for i, m := range msgs {
				if err := c.WriteMessage(gorilla.BinaryMessage, m); err != nil {
					t.Fatal(err)
				}
				if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, m) {
					t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
				}
			}
			_ = c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, ""), time.Now().Add(10*time.Second))
			if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, 1000) {
				t.Fatalf("close: %v", err)
			}
		})
		for _, mode := range []coder.CompressionMode{coder.CompressionNoContextTakeover, coder.CompressionContextTakeover} {
			t.Run(fmt.Sprint("coder ", path, " ", mode), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, resp, err := coder.Dial(ctx, url+path, &coder.DialOptions{CompressionMode: mode, CompressionThreshold: 1})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				if !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
					t.Fatalf("not negotiated: %q", resp.Header.Get("Sec-WebSocket-Extensions"))
				}
				c.SetReadLimit(1 << 20)
				for i, m := range msgs {
					w, err := c.Writer(ctx, coder.MessageBinary)
					if err != nil {
						t.Fatal(err)
					}
					for k := 0; k < len(m); k += 3000 {
						if _, err := w.Write(m[k:min(k+3000, len(m))]); err != nil {
							t.Fatal(err)
						}
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					if _, got, err := c.Read(ctx); err != nil || !bytes.Equal(got, m) {
						t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
					}
				}
				if err := c.Close(coder.StatusNormalClosure, ""); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// ---- a deflate decoder that reports distances ----

// cmpBitReader reads a deflate stream LSB first.
type cmpBitReader struct {
	in    []byte
	pos   int
	bits  uint64
	nbits uint
}

var errCmpShort = errors.New("deflate stream ends early")

func (b *cmpBitReader) need(n uint) (int, error) {
	for b.nbits < n {
		if b.pos >= len(b.in) {
			return 0, errCmpShort
		}
		b.bits |= uint64(b.in[b.pos]) << b.nbits
		b.pos++
		b.nbits += 8
	}
	v := int(b.bits & (1<<n - 1))
	b.bits >>= n
	b.nbits -= n
	return v, nil
}

type cmpHuffman struct {
	count [16]int
	sym   []int
}

func cmpBuildHuffman(lengths []int) *cmpHuffman {
	h := &cmpHuffman{sym: make([]int, len(lengths))}
	for _, l := range lengths {
		h.count[l]++
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for s, l := range lengths {
		if l != 0 {
			h.sym[offs[l]] = s
			offs[l]++
		}
	}
	return h
}

func (b *cmpBitReader) decode(h *cmpHuffman) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l <= 15; l++ {
		bit, err := b.need(1)
		if err != nil {
			return 0, err
		}
		code |= bit
		count := h.count[l]
		if code-count < first {
			return h.sym[index+code-first], nil
		}
		index += count
		first += count
		first <<= 1
		code <<= 1
	}
	return 0, errors.New("bad Huffman code")
}

var (
	cmpLenBase  = []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	cmpLenExtra = []uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	cmpDistBase = []int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	cmpDistExtr = []uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// cmpInflateDist inflates a whole deflate stream after hist, returning
// hist and the output, and the longest back reference it used.
func cmpInflateDist(in, hist []byte) (out []byte, maxDist int, err error) {
	b := &cmpBitReader{in: in}
	out = append([]byte(nil), hist...)
	for {
		final, err := b.need(1)
		if err != nil {
			return out, maxDist, err
		}
		typ, err := b.need(2)
		if err != nil {
			return out, maxDist, err
		}
		var lit, dist *cmpHuffman
		switch typ {
		case 0:
			b.bits, b.nbits = 0, 0
			if b.pos+4 > len(b.in) {
				return out, maxDist, errCmpShort
			}
			n := int(b.in[b.pos]) | int(b.in[b.pos+1])<<8
			if nn := int(b.in[b.pos+2]) | int(b.in[b.pos+3])<<8; nn != n^0xffff {
				return out, maxDist, errors.New("bad stored length")
			}
			b.pos += 4
			if b.pos+n > len(b.in) {
				return out, maxDist, errCmpShort
			}
			out = append(out, b.in[b.pos:b.pos+n]...)
			b.pos += n
		case 1:
			l := make([]int, 288)
			for i := range l {
				switch {
				case i < 144:
					l[i] = 8
				case i < 256:
					l[i] = 9
				case i < 280:
					l[i] = 7
				default:
					l[i] = 8
				}
			}
			d := make([]int, 30)
			for i := range d {
				d[i] = 5
			}
			lit, dist = cmpBuildHuffman(l), cmpBuildHuffman(d)
		case 2:
			if lit, dist, err = b.dynamic(); err != nil {
				return out, maxDist, err
			}
		default:
			return out, maxDist, errors.New("bad block type")
		}
		for lit != nil {
			s, err := b.decode(lit)
			if err != nil {
				return out, maxDist, err
			}
			if s < 256 {
				out = append(out, byte(s))
				continue
			}
			if s == 256 {
				break
			}
			s -= 257
			if s >= len(cmpLenBase) {
				return out, maxDist, errors.New("bad length symbol")
			}
			e, err := b.need(cmpLenExtra[s])
			if err != nil {
				return out, maxDist, err
			}
			length := cmpLenBase[s] + e
			ds, err := b.decode(dist)
			if err != nil {
				return out, maxDist, err
			}
			if ds >= len(cmpDistBase) {
				return out, maxDist, errors.New("bad distance symbol")
			}
			if e, err = b.need(cmpDistExtr[ds]); err != nil {
				return out, maxDist, err
			}
			d := cmpDistBase[ds] + e
			if d > len(out) {
				return out, maxDist, errors.New("distance too far back")
			}
			maxDist = max(maxDist, d)
			for range length {
				out = append(out, out[len(out)-d])
			}
		}
		if final == 1 {
			return out, maxDist, nil
		}
	}
}

func (b *cmpBitReader) dynamic() (lit, dist *cmpHuffman, err error) {
	nlen, err := b.need(5)
	if err != nil {
		return nil, nil, err
	}
	ndist, err := b.need(5)
	if err != nil {
		return nil, nil, err
	}
	ncode, err := b.need(4)
	if err != nil {
		return nil, nil, err
	}
	nlen, ndist, ncode = nlen+257, ndist+1, ncode+4
	order := []int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
	cl := make([]int, 19)
	for i := range ncode {
		if cl[order[i]], err = b.need(3); err != nil {
			return nil, nil, err
		}
	}
	ch := cmpBuildHuffman(cl)
	lengths := make([]int, 0, nlen+ndist)
	for len(lengths) < nlen+ndist {
		s, err := b.decode(ch)
		if err != nil {
			return nil, nil, err
		}
		if s < 16 {
			lengths = append(lengths, s)
			continue
		}
		v, rep := 0, 0
		switch s {
		case 16:
			if len(lengths) == 0 {
				return nil, nil, errors.New("repeat with no length")
			}
			v = lengths[len(lengths)-1]
			r, err := b.need(2)
			if err != nil {
				return nil, nil, err
			}
			rep = 3 + r
		case 17:
			r, err := b.need(3)
			if err != nil {
				return nil, nil, err
			}
			rep = 3 + r
		default:
			r, err := b.need(7)
			if err != nil {
				return nil, nil, err
			}
			rep = 11 + r
		}
		for range rep {
			lengths = append(lengths, v)
		}
	}
	if len(lengths) > nlen+ndist {
		return nil, nil, errors.New("too many code lengths")
	}
	return cmpBuildHuffman(lengths[:nlen]), cmpBuildHuffman(lengths[nlen:]), nil
}
