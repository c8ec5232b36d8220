package wsconn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// Each protocol violation from a peer must get its exact close code
// (RFC 6455 §5, §7.4.1, §8.1).
func TestViolationsGetTheirCloseCode(t *testing.T) {
	errc := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{MaxMessageSize: 1 << 16}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		errc <- in.Err()
		return in.Err()
	})
	tests := []struct {
		name string
		send func(c *rawClient)
		code frames.CloseCode
		err  error
	}{
		{"rsv1 without extension", func(c *rawClient) { c.frameRsv(frames.OpText, true, frames.Rsv1, []byte("x")) }, 1002, frames.ErrReservedBits},
		{"rsv2", func(c *rawClient) { c.frameRsv(frames.OpBinary, true, frames.Rsv2, nil) }, 1002, frames.ErrReservedBits},
		{"rsv3 on ping", func(c *rawClient) { c.frameRsv(frames.OpPing, true, frames.Rsv3, nil) }, 1002, frames.ErrReservedBits},
		{"reserved data opcode", func(c *rawClient) { c.frame(3, true, nil) }, 1002, frames.ErrReservedOpcode},
		{"reserved control opcode", func(c *rawClient) { c.frame(0xB, true, nil) }, 1002, frames.ErrReservedOpcode},
		{"unmasked frame", func(c *rawClient) { c.write([]byte{0x81, 0x02, 'h', 'i'}) }, 1002, frames.ErrUnmasked},
		{"ping over 125 bytes", func(c *rawClient) { c.frame(frames.OpPing, true, make([]byte, 126)) }, 1002, frames.ErrControlTooLong},
		{"fragmented ping", func(c *rawClient) { c.frame(frames.OpPing, false, nil) }, 1002, frames.ErrFragmentedControl},
		{"continuation without start", func(c *rawClient) { c.frame(frames.OpContinuation, true, []byte("x")) }, 1002, messages.ErrUnexpectedContinuation},
		{"new message inside a fragmented one", func(c *rawClient) {
			c.frame(frames.OpText, false, []byte("a"))
			c.frame(frames.OpText, true, []byte("b"))
		}, 1002, messages.ErrExpectedContinuation},
		{"invalid utf-8", func(c *rawClient) { c.frame(frames.OpText, true, []byte{0xff}) }, 1007, messages.ErrInvalidUTF8},
		{"surrogate in text", func(c *rawClient) { c.frame(frames.OpText, true, []byte{0xed, 0xa0, 0x80}) }, 1007, messages.ErrInvalidUTF8},
		{"truncated utf-8 at message end", func(c *rawClient) {
			c.frame(frames.OpText, false, []byte("ok"))
			c.frame(frames.OpContinuation, true, []byte{0xe2, 0x82})
		}, 1007, messages.ErrInvalidUTF8},
		{"message over the limit", func(c *rawClient) { c.frame(frames.OpBinary, true, make([]byte, 1<<16+1)) }, 1009, messages.ErrTooLarge},
		{"fragments over the limit", func(c *rawClient) {
			c.frame(frames.OpBinary, false, make([]byte, 1<<15))
			c.frame(frames.OpContinuation, true, make([]byte, 1<<15+1))
		}, 1009, messages.ErrTooLarge},
		{"length 2^63", func(c *rawClient) {
			c.write([]byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
		}, 1002, frames.ErrLengthMSB},
		{"length 2^63-1", func(c *rawClient) {
			c.write([]byte{0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4})
		}, 1009, messages.ErrTooLarge},
		{"close payload of one byte", func(c *rawClient) { c.frame(frames.OpClose, true, []byte{3}) }, 1002, frames.ErrClosePayload},
		{"close reason not utf-8", func(c *rawClient) { c.frame(frames.OpClose, true, closePayload(1000, "\xff")) }, 1007, frames.ErrInvalidCloseReason},
	}
	for _, code := range []frames.CloseCode{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		tests = append(tests, struct {
			name string
			send func(c *rawClient)
			code frames.CloseCode
			err  error
		}{fmt.Sprintf("close code %d", code), func(c *rawClient) {
			c.frame(frames.OpClose, true, closePayload(code, ""))
		}, 1002, frames.ErrInvalidCloseCode})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, url)
			tt.send(c)
			c.expectClose(tt.code)
			err := <-errc
			if !errors.Is(err, tt.err) || wsconn.CloseStatus(err) != tt.code {
				t.Fatalf("in.Err() = %v, want %v with code %d", err, tt.err, tt.code)
			}
			c.expectEOF()
		})
	}
}

func TestValidPeerCloseCodesAreEchoed(t *testing.T) {
	url, _ := testServer(t, nil, echo)
	for _, code := range []frames.CloseCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			c := dialRaw(t, url)
			c.frame(frames.OpClose, true, closePayload(code, "why"))
			if reason := c.expectClose(code); reason != "why" {
				t.Fatalf("echoed reason %q", reason)
			}
			c.expectEOF()
		})
	}
	t.Run("empty close", func(t *testing.T) {
		c := dialRaw(t, url)
		c.frame(frames.OpClose, true, nil)
		h, p := c.read()
		if h.Op != frames.OpClose || len(p) != 0 {
			t.Fatalf("reply to an empty close: op %v payload %x", h.Op, p)
		}
	})
}

// A text message split at every byte boundary must pass when valid, and a
// bad one must fail with 1007, wherever the split falls.
func TestUTF8SplitAtEveryBoundary(t *testing.T) {
	url, _ := testServer(t, nil, echo)
	valid := []byte("aé€𐍈z")
	for cut := 0; cut <= len(valid); cut++ {
		c := dialRaw(t, url)
		c.frame(frames.OpText, false, valid[:cut])
		c.frame(frames.OpContinuation, true, valid[cut:])
		h, p := c.read()
		if h.Op != frames.OpText || !bytes.Equal(p, valid) {
			t.Fatalf("cut %d: echo %v %q", cut, h.Op, p)
		}
		c.frame(frames.OpClose, true, closePayload(1000, ""))
		c.expectClose(1000)
	}
	invalid := []byte("aé\xf4\x90\x80\x80z") // beyond U+10FFFF
	for cut := 0; cut <= len(invalid); cut++ {
		c := dialRaw(t, url)
		c.frame(frames.OpText, false, invalid[:cut])
		c.frame(frames.OpContinuation, true, invalid[cut:])
		c.expectClose(1007)
	}
}

func TestControlFramesInsideFragmentedMessage(t *testing.T) {
	url, _ := testServer(t, nil, echo)
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("hel"))
	c.frame(frames.OpPing, true, []byte("p1"))
	c.frame(frames.OpContinuation, false, []byte("lo "))
	c.frame(frames.OpPong, true, []byte("unsolicited"))
	c.frame(frames.OpContinuation, true, []byte("world"))
	h, p := c.read()
	if h.Op != frames.OpPong || string(p) != "p1" {
		t.Fatalf("want pong p1 first, got %v %q", h.Op, p)
	}
	h, p = c.read()
	if h.Op != frames.OpText || string(p) != "hello world" {
		t.Fatalf("got %v %q", h.Op, p)
	}
}

// A peer that announces a huge frame and sends little must not make the
// server allocate what it announced.
func TestNoAllocationForAnnouncedLength(t *testing.T) {
	ended := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{MaxMessageSize: 1 << 40}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		ended <- in.Err()
		return in.Err()
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := dialRaw(t, url)
	// 1 TiB announced, 10 bytes sent, then a close of the transport.
	c.write([]byte{0x82, 0xFF, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	c.write(make([]byte, 10))
	c.nc.Close()
	if err := <-ended; wsconn.CloseStatus(err) != frames.CloseAbnormal {
		t.Fatalf("in.Err() = %v, want an abnormal closure", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Fatalf("allocated %d bytes for a frame that announced 1 TiB", grew)
	}
}
