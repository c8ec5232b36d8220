package wsconn_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// r2SlowRTT is a ConnObserver whose PingRTT, run by the background reader
// as it handles the PONG to colibri's keep-alive PING, tells the handler
// to start its next loop and returns only once that loop has had time to
// claim the Inbound (looping set, waiting for the read side). It stands
// for anything that keeps the background reader between two frames that
// are already buffered (a PONG written to a slow peer does the same).
type r2SlowRTT struct {
	wsconn.NopObserver
	start chan struct{}
}

func (o *r2SlowRTT) ConnOpened(*wsconn.Conn) wsconn.ConnObserver { return o }

func (o *r2SlowRTT) PingRTT(time.Duration) {
	select {
	case <-o.start:
		return
	default:
	}
	close(o.start)
	time.Sleep(300 * time.Millisecond) // long, so that the loop claims the Inbound under load too
}

// r2StaleLimitRound: a first loop (first: "frames" with MaxMessageSize
// 1 KiB, or "messages" for Messages(1024)) takes one message and breaks.
// While no loop runs, the peer answers colibri's PING and sends, in one
// write, a 2000-byte binary message, the PONG and its CLOSE 1000. The
// background reader keeps the message and, between the PONG and the
// CLOSE, the handler starts a Readers loop, which has no limit. The
// Readers loop must get the 2000 bytes and the close must be a clean
// 1000 (judgeKept "never refus[es] what the loop would accept").
func r2StaleLimitRound(t *testing.T, first string) {
	obs := &r2SlowRTT{start: make(chan struct{})}
	got := make(chan int, 4)
	errc := make(chan error, 1)
	cfg := &wsconn.Config{MaxMessageSize: 1024, PingInterval: 40 * time.Millisecond, Observer: obs}
	url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		if first == "frames" {
			for range in.Frames() {
				break
			}
		} else {
			for range in.Messages(1024) {
				break
			}
		}
		<-obs.start
		for _, r := range in.Readers() {
			n, _ := io.Copy(io.Discard, r)
			got <- int(n)
		}
		errc <- in.Err()
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("a"))
	var ping []byte
	for {
		h, p := c.read()
		if h.Op == frames.OpPing {
			ping = p
			break
		}
	}
	var b []byte
	b = append(b, maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Mask: [4]byte{1, 2, 3, 4}}, bytes.Repeat([]byte{7}, 2000))...)
	b = append(b, maskedFrame(frames.Header{Op: frames.OpPong, Fin: true, Mask: [4]byte{5, 6, 7, 8}}, ping)...)
	b = append(b, maskedFrame(frames.Header{Op: frames.OpClose, Fin: true, Mask: [4]byte{9, 9, 9, 9}}, closePayload(frames.CloseNormal, ""))...)
	c.write(b)

	var code frames.CloseCode
	for {
		h, p := c.read()
		if h.Op == frames.OpClose {
			code = frames.CloseCode(binary.BigEndian.Uint16(p))
			break
		}
	}
	if code != frames.CloseNormal {
		t.Errorf("%s loop, then Readers: the server closed with %d, want 1000: the kept 2000-byte message was judged against the last loop's limit", first, code)
	}
	err := waitWithin(t, errc, 3*time.Second, "the handler")
	select {
	case n := <-got:
		if n != 2000 {
			t.Errorf("the Readers loop got %d bytes, want 2000", n)
		}
	default:
		t.Errorf("the Readers loop got nothing (in.Err: %v)", err)
	}
}

// TestCornerKeptDataJudgedWithTheClaimingLoopsStaleFrameCap: a Frames loop's
// per-frame limit must not outlive it: startLoop records the new loop's
// limits with its claim, so judgeKept never sees the last loop's.
func TestCornerKeptDataJudgedWithTheClaimingLoopsStaleFrameCap(t *testing.T) {
	r2StaleLimitRound(t, "frames")
}

// TestCornerKeptDataJudgedWithTheClaimingLoopsStaleMessageLimit: the same
// with a Messages loop's limit.
func TestCornerKeptDataJudgedWithTheClaimingLoopsStaleMessageLimit(t *testing.T) {
	r2StaleLimitRound(t, "messages")
}
