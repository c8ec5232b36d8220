package wsconn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// Messages(maxSize) with permessage-deflate bounds the inflated size: a
// gorilla client's compressed message of exactly maxSize bytes passes,
// one of maxSize+1 (compressing to far fewer bytes) closes with 1009.
func TestCompressedLimitAtTheByte(t *testing.T) {
	const limit = 5000
	url, _ := testServer(t, &wsconn.Config{Compression: wsconn.Compression{Enabled: true}}, sizesUnder(limit))
	c := dialGorillaDeflate(t, url)
	c.EnableWriteCompression(true)
	if err := c.WriteMessage(gorilla.TextMessage, bytes.Repeat([]byte("abcd"), limit/4)); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != fmt.Sprintf("text %d", limit) {
		t.Fatalf("got %q %v, want the message of exactly the limit", p, err)
	}
	if err := c.WriteMessage(gorilla.TextMessage, append(bytes.Repeat([]byte("abcd"), limit/4), 'a')); err != nil {
		t.Fatal(err)
	}
	_, p, err := c.ReadMessage()
	if ce, ok := errors.AsType[*gorilla.CloseError](err); !ok || ce.Code != int(frames.CloseMessageTooBig) {
		t.Fatalf("one inflated byte over the limit: got %q %v, want close 1009", p, err)
	}
}

// Empty continuation frames count nothing against the limit: a message
// of exactly maxSize bytes followed by hundreds of empty continuations
// (PINGs among them) passes whole, and the byte after them is refused
// with 1009. Frames yields every empty fragment with its FIN bit.
func TestEmptyContinuationsAtTheLimit(t *testing.T) {
	const limit = 64
	t.Run("Messages", func(t *testing.T) {
		url, _ := testServer(t, nil, sizesUnder(limit))
		c := dialRaw(t, url)
		send := func(last []byte) {
			c.frame(frames.OpText, false, bytesOf('a', limit))
			for i := range 300 {
				if i%100 == 0 {
					c.frame(frames.OpPing, true, nil)
				}
				c.frame(frames.OpContinuation, false, nil)
			}
			c.frame(frames.OpContinuation, true, last)
		}
		send(nil)
		for {
			h, p := c.read()
			if h.Op == frames.OpPong {
				continue
			}
			if string(p) != fmt.Sprintf("text %d", limit) {
				t.Fatalf("got %v %q, want the %d-byte message", h.Op, p, limit)
			}
			break
		}
		send([]byte("b"))
		c.expectClose(frames.CloseMessageTooBig)
	})
	t.Run("Frames", func(t *testing.T) {
		got := make(chan string, 1)
		url, _ := testServer(t, &wsconn.Config{MaxMessageSize: limit}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			var b strings.Builder
			for f := range in.Frames() {
				fmt.Fprintf(&b, "%d%v ", len(f.Payload), f.Fin)
				if f.Fin {
					break
				}
			}
			got <- b.String()
			return nil
		})
		c := dialRaw(t, url)
		c.frame(frames.OpBinary, false, nil)
		c.frame(frames.OpContinuation, false, nil)
		c.frame(frames.OpContinuation, false, bytesOf('x', limit))
		c.frame(frames.OpContinuation, true, nil)
		if s := waitFor(t, got, "the frames"); s != fmt.Sprintf("0false 0false %dfalse 0true ", limit) {
			t.Fatalf("frames %q", s)
		}
		c.expectClose(frames.CloseNormal)
	})
}

// UTF-8 is checked as text arrives: after many valid fragments, a
// continuation frame that announces 16 MiB and begins with a bad byte
// closes with 1007 as soon as that byte arrives, long before the frame
// could end, whichever iterator reads (Messages with a limit large enough
// to allow the frame).
func TestBadByteEarlyInAHugeFragmentedText(t *testing.T) {
	for _, loop := range []string{"Messages", "Frames", "Readers"} {
		t.Run(loop, func(t *testing.T) {
			errc := make(chan error, 1)
			cfg := &wsconn.Config{MaxMessageSize: 32 << 20, CloseTimeout: time.Minute}
			url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
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
			c.frame(frames.OpText, false, []byte("caf\xc3"))
			for range 100 {
				c.frame(frames.OpContinuation, false, []byte("\xa9 caf\xc3"))
			}
			c.rvIterHeader(frames.OpContinuation, true, 16<<20)
			c.write([]byte("\xa9 fine so far, then \xc0\xaf"))
			c.expectClose(frames.CloseInvalidPayload)
			if err := waitFor(t, errc, "the loop"); !errors.Is(err, messages.ErrInvalidUTF8) {
				t.Fatalf("in.Err() = %v, want ErrInvalidUTF8", err)
			}
		})
	}
}

// handlers.md, "Err after the loop": nil when "the body broke out of
// the loop". A Readers body that breaks out leaves the rest of its
// message unread (for a next loop to discard): Err is nil even when that
// rest is not UTF-8, and the handler's return closes with 1000.
func TestReadersBreakLeavesABadRestUnjudged(t *testing.T) {
	errc := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for _, r := range in.Readers() {
			b := make([]byte, 5)
			_, _ = io.ReadFull(r, b)
			break
		}
		errc <- in.Err()
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("hello"))
	if err := waitFor(t, errc, "the loop"); err != nil {
		t.Fatalf("in.Err() after the body broke out = %v, want nil", err)
	}
	c.frame(frames.OpContinuation, true, []byte(" \xff"))
	c.expectClose(frames.CloseNormal)
}

// A Readers body that reads only the head of a large fragmented message
// from a gorilla client (fragments of its 4 KiB write buffer) and moves
// on: the unread rest is discarded, and the next message arrives whole.
func TestReadersUnreadRestThenNextMessageGorilla(t *testing.T) {
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for kind, r := range in.Readers() {
			head := make([]byte, 10)
			n, _ := io.ReadFull(r, head)
			if err := out.WriteText(ctx, fmt.Sprintf("%v %s", kind, head[:n])); err != nil {
				return err
			}
		}
		return in.Err()
	})
	c := dialGorilla(t, url)
	w, err := c.NextWriter(gorilla.BinaryMessage)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		fmt.Fprintf(w, "%04d%s", i, bytes.Repeat([]byte("."), 996))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(gorilla.TextMessage, []byte("second message")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"binary 0000......", "text second mes"} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != want {
			t.Fatalf("got %q %v, want %q", p, err, want)
		}
	}
}
