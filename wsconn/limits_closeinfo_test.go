package wsconn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// What the peer receives in the CLOSE frame for a violation must be what
// the observer is told: ProtocolError with the same code, then CloseInfo
// with that code and reason, by the local side (docs/observability.md,
// wsconn.CloseInfo). TestCloseInfoSaysWhoClosed checks one 1007; this
// covers each class of violation the limits and the close-frame rules
// produce.
func TestLimitsCloseInfoMatchesTheWireForViolations(t *testing.T) {
	tests := []struct {
		name string
		send func(c *rawClient)
		code frames.CloseCode
	}{
		{"close code 1005", func(c *rawClient) { c.frame(frames.OpClose, true, closePayload(1005, "")) }, 1002},
		{"close code 1006", func(c *rawClient) { c.frame(frames.OpClose, true, closePayload(1006, "")) }, 1002},
		{"close code 1015", func(c *rawClient) { c.frame(frames.OpClose, true, closePayload(1015, "")) }, 1002},
		{"close code 0", func(c *rawClient) { c.frame(frames.OpClose, true, closePayload(0, "")) }, 1002},
		{"close code 2999", func(c *rawClient) { c.frame(frames.OpClose, true, closePayload(2999, "")) }, 1002},
		{"close payload of one byte", func(c *rawClient) { c.frame(frames.OpClose, true, []byte{3}) }, 1002},
		{"close reason not UTF-8", func(c *rawClient) { c.frame(frames.OpClose, true, closePayload(1000, "a\xffb")) }, 1007},
		{"PING of 126 bytes", func(c *rawClient) { c.frame(frames.OpPing, true, make([]byte, 126)) }, 1002},
		{"fragmented PING", func(c *rawClient) { c.frame(frames.OpPing, false, nil) }, 1002},
		{"reserved opcode", func(c *rawClient) { c.frame(0x5, true, nil) }, 1002},
		{"RSV3", func(c *rawClient) { c.frameRsv(frames.OpText, true, frames.Rsv3, []byte("x")) }, 1002},
		{"unmasked", func(c *rawClient) { c.write([]byte{0x82, 0x01, 'x'}) }, 1002},
		{"frame over MaxFrameSize", func(c *rawClient) { c.frame(frames.OpBinary, true, make([]byte, 257)) }, 1009},
		{"message over MaxMessageSize", func(c *rawClient) {
			c.frame(frames.OpBinary, false, make([]byte, 200))
			c.frame(frames.OpContinuation, false, make([]byte, 200))
			c.frame(frames.OpContinuation, true, make([]byte, 200))
		}, 1009},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newEventLog()
			url, _ := testServer(t, &wsconn.Config{Observer: l, MaxFrameSize: 256, MaxMessageSize: 512, PingInterval: -1}, echo)
			c := dialRaw(t, url)
			tt.send(c)
			reason := c.expectClose(tt.code)
			_ = c.nc.Close()
			info, events := l.wait(t)
			if info.Code != tt.code || info.Reason != reason || info.By != wsconn.SideLocal {
				t.Errorf("CloseInfo %d %q by %v; the peer received %d %q from the local side", info.Code, info.Reason, info.By, tt.code, reason)
			}
			if want := fmt.Sprintf("violation %d", tt.code); !strings.Contains(strings.Join(events, ","), want) {
				t.Errorf("events %q lack %q", events, want)
			}
		})
	}
}

// The timeouts colibri enforces itself: the code and reason on the wire
// (if any) are the ones CloseInfo reports, by the local side.
func TestLimitsCloseInfoForTimeouts(t *testing.T) {
	t.Run("idle timeout against PINGs trickled a byte at a time", func(t *testing.T) {
		// Control frames do not count as data (docs/configuration.md),
		// however slowly they come.
		const idle = 300 * time.Millisecond
		l := newEventLog()
		url, _ := testServer(t, &wsconn.Config{Observer: l, IdleTimeout: idle, PingInterval: -1}, echo)
		c := dialRaw(t, url)
		start := time.Now()
		ping := peerAdvMasked(frames.OpPing, true, []byte("slow"))
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if _, err := c.nc.Write(ping[i%len(ping) : i%len(ping)+1]); err != nil {
					return
				}
			}
		}()
		reason := c.expectClose(frames.CloseGoingAway)
		close(stop)
		<-done
		d := time.Since(start)
		_ = c.nc.Close()
		if reason != "idle timeout" || d < idle || d > idle+2*time.Second {
			t.Fatalf("closed with %q after %v, want \"idle timeout\" after about %v", reason, d, idle)
		}
		info, _ := l.wait(t)
		if info.Code != frames.CloseGoingAway || info.Reason != "idle timeout" || info.By != wsconn.SideLocal {
			t.Fatalf("CloseInfo %d %q by %v, want 1001 \"idle timeout\" by local", info.Code, info.Reason, info.By)
		}
	})
	t.Run("ping timeout", func(t *testing.T) {
		l := newEventLog()
		url, _ := testServer(t, &wsconn.Config{Observer: l, PingInterval: 100 * time.Millisecond, PongTimeout: 200 * time.Millisecond}, echo)
		c := dialRaw(t, url) // never answers the PING
		reason := c.expectClose(frames.CloseGoingAway)
		_ = c.nc.Close()
		if reason != "ping timeout" {
			t.Fatalf("reason %q", reason)
		}
		info, _ := l.wait(t)
		if info.Code != frames.CloseGoingAway || info.Reason != "ping timeout" || info.By != wsconn.SideLocal {
			t.Fatalf("CloseInfo %d %q by %v, want 1001 \"ping timeout\" by local", info.Code, info.Reason, info.By)
		}
	})
	t.Run("write timeout", func(t *testing.T) {
		// A peer that never reads: no CLOSE can go out, so CloseInfo says
		// 1006, by the local side, and the connection ends without
		// waiting CloseTimeout (docs/configuration.md WriteTimeout).
		l := newEventLog()
		payload := strings.Repeat("x", 64<<10)
		url, _ := testServer(t, &wsconn.Config{Observer: l, WriteTimeout: 200 * time.Millisecond, CloseTimeout: time.Minute, PingInterval: -1},
			func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				for {
					if err := out.WriteText(ctx, payload); err != nil {
						return err
					}
				}
			})
		_, _ = handshakeRawWith(t, smallBufferDialer(), url, nil) // never reads
		info, _ := l.wait(t)
		if info.Code != frames.CloseAbnormal || info.Reason != "write failed" || info.By != wsconn.SideLocal {
			t.Fatalf("CloseInfo %d %q by %v, want 1006 \"write failed\" by local", info.Code, info.Reason, info.By)
		}
	})
}

// A data frame's header that trickles in a byte at a time is not data
// yet: IdleTimeout still ends the connection (docs/security.md "only a
// frame's header counts as data"), well before the header completes.
func TestLimitsIdleTimeoutAgainstATricklingHeader(t *testing.T) {
	const idle = 300 * time.Millisecond
	url, _ := testServer(t, &wsconn.Config{IdleTimeout: idle, PingInterval: -1}, echo)
	c := dialRaw(t, url)
	start := time.Now()
	// Binary, 64-bit length, masked: 14 header bytes, one every 100 ms.
	hdr := []byte{0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0x10, 0, 1, 2, 3, 4}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range hdr {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.nc.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	reason := c.expectClose(frames.CloseGoingAway)
	close(stop)
	<-done
	if d := time.Since(start); reason != "idle timeout" || d < idle || d > idle+idle/2+200*time.Millisecond {
		t.Fatalf("closed with %q after %v, want \"idle timeout\" after about %v", reason, d, idle)
	}
}

// docs/closing.md "The closing handshake and TCP": after a keep-alive or
// idle timeout colibri sends CLOSE at once and closes TCP without waiting
// for the peer's CLOSE (only 50 ms for one crossing its own), however
// long CloseTimeout is.
func TestLimitsTimeoutsDoNotWaitForThePeersClose(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    wsconn.Config
		reason string
	}{
		{"idle", wsconn.Config{IdleTimeout: 200 * time.Millisecond, PingInterval: -1, CloseTimeout: time.Minute}, "idle timeout"},
		{"ping", wsconn.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 150 * time.Millisecond, CloseTimeout: time.Minute}, "ping timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			url, _ := testServer(t, &cfg, echo)
			c := dialRaw(t, url)
			if reason := c.expectClose(frames.CloseGoingAway); reason != tc.reason {
				t.Fatalf("reason %q, want %q", reason, tc.reason)
			}
			start := time.Now()
			c.expectEOF() // fails after 5 s, far below CloseTimeout
			if d := time.Since(start); d > time.Second {
				t.Fatalf("TCP closed %v after the CLOSE, want within 50 ms and some", d)
			}
		})
	}
}

// wsconn.Config.MaxFrameSize caps data frames: a control frame, at most
// 125 bytes by RFC 6455, is not held to it, so a 100-byte PING is
// answered under a MaxFrameSize of 16, and a 17-byte data frame closes
// with 1009.
func TestLimitsMaxFrameSizeAndControlFrames(t *testing.T) {
	url, _ := testServer(t, &wsconn.Config{MaxFrameSize: 16, PingInterval: -1}, echo)
	c := dialRaw(t, url)
	c.frame(frames.OpPing, true, make([]byte, 100))
	if h, p := c.read(); h.Op != frames.OpPong || len(p) != 100 {
		t.Fatalf("a 100-byte PING with MaxFrameSize 16 got %v (%d bytes), want its PONG", h.Op, len(p))
	}
	c.frame(frames.OpBinary, true, make([]byte, 17))
	c.expectClose(frames.CloseMessageTooBig)
}
