package wsconn_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// A Messages(10) loop takes one message and breaks; while no loop runs the
// peer sends 20 bytes and its CLOSE, which the background reader meets
// behind them. The data is judged without the ended loop's limit: the
// server echoes 1000 rather than failing with 1009. ended says how the
// first loop ends: "break", or "panic" (the body panics and the handler
// recovers).
func rlKeptAfterLimitedLoop(t *testing.T, ended string) {
	res := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		func() {
			defer func() { _ = recover() }()
			for range in.Messages(10) {
				if ended == "panic" {
					panic("body")
				}
				break
			}
		}()
		if err := out.WriteText(ctx, "broke"); err != nil {
			return err
		}
		<-ctx.Done()
		for range in.Messages(0) {
		}
		res <- in.Err()
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("first"))
	if h, p := c.read(); h.Op != frames.OpText || string(p) != "broke" {
		t.Fatalf("got %+v %q", h, p)
	}
	c.frame(frames.OpBinary, true, bytes.Repeat([]byte{1}, 20))
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
	if err := waitFor(t, res, "the handler"); err != nil {
		t.Fatalf("in.Err() = %v, want nil", err)
	}
	c.expectEOF()
}

func TestCornerKeptDataAfterBrokenLimitedLoop(t *testing.T) {
	for range 5 {
		rlKeptAfterLimitedLoop(t, "break")
	}
}

// The same when the Messages(10) body panicked: endLoop resets the limit
// only when the loop held the read side, and a panicking body had let it
// go (inbound.go endLoop), so the dead loop's limit judges the kept data.
func TestCornerKeptDataAfterPanickedLimitedLoop(t *testing.T) {
	for range 5 {
		rlKeptAfterLimitedLoop(t, "panic")
	}
}

// A Messages(10) loop breaks; the next loop of each kind reads a 20-byte
// message the peer sends then: Messages(0), Readers and Frames all take it
// (the earlier limit does not follow them), and a Messages(10) loop after
// them refuses a 20-byte message with 1009.
func TestCornerNextLoopHasItsOwnLimit(t *testing.T) {
	sizes := make(chan int, 8)
	url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for m := range in.Messages(10) {
			sizes <- len(m.Payload)
			break
		}
		for m := range in.Messages(0) {
			sizes <- len(m.Payload)
			break
		}
		for _, r := range in.Readers() {
			var b bytes.Buffer
			_, _ = b.ReadFrom(r)
			sizes <- b.Len()
			break
		}
		for f := range in.Frames() {
			sizes <- len(f.Payload)
			break
		}
		for m := range in.Messages(10) {
			sizes <- len(m.Payload)
		}
		return in.Err()
	})
	c := dialRaw(t, url)
	big := bytes.Repeat([]byte{7}, 20)
	c.frame(frames.OpBinary, true, []byte("small"))
	for range 3 {
		c.frame(frames.OpBinary, true, big)
	}
	c.frame(frames.OpBinary, true, []byte("ok"))
	c.frame(frames.OpBinary, true, big)
	for i, want := range []int{5, 20, 20, 20, 2} {
		if got := waitFor(t, sizes, "a message"); got != want {
			t.Fatalf("message %d: %d bytes, want %d", i, got, want)
		}
	}
	c.expectClose(frames.CloseMessageTooBig)
	c.frame(frames.OpClose, true, closePayload(frames.CloseMessageTooBig, ""))
	c.expectEOF()
}

// A message begun under a Frames loop (an 8-byte first fragment) and
// finished under Messages(10): its size is the whole message's, so a 1-byte
// rest (9 in all) is yielded, and a 5-byte rest (13 in all) closes with
// 1009; a Messages(0) loop takes the 13 bytes.
func TestCornerMessageSpanningLoopsIsBoundedWhole(t *testing.T) {
	cases := []struct {
		rest  int
		limit int64
		code  frames.CloseCode // 0: yielded
	}{
		{1, 10, 0},
		{2, 10, 0},
		{3, 10, frames.CloseMessageTooBig},
		{5, 10, frames.CloseMessageTooBig},
		{5, 0, 0},
	}
	for _, tc := range cases {
		rests := make(chan int, 1)
		url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for range in.Frames() {
				break
			}
			for m := range in.Messages(tc.limit) {
				rests <- len(m.Payload)
				if err := out.WriteText(ctx, "got"); err != nil {
					return err
				}
			}
			return in.Err()
		})
		c := dialRaw(t, url)
		c.frame(frames.OpBinary, false, bytes.Repeat([]byte{1}, 8))
		c.frame(frames.OpContinuation, true, bytes.Repeat([]byte{2}, tc.rest))
		if tc.code != 0 {
			c.expectClose(tc.code)
			c.frame(frames.OpClose, true, closePayload(tc.code, ""))
			c.expectEOF()
			continue
		}
		if got := waitFor(t, rests, "the rest"); got != tc.rest {
			t.Fatalf("rest %d, limit %d: yielded %d bytes", tc.rest, tc.limit, got)
		}
		if h, p := c.read(); h.Op != frames.OpText || string(p) != "got" {
			t.Fatalf("got %+v %q", h, p)
		}
		c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
		c.expectClose(frames.CloseNormal)
		c.expectEOF()
	}
}
