package wsconn_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// rtaBusy is how long a loop body stays busy: far beyond the 20 ms after
// which the background reader takes over.
const rtaBusy = 150 * time.Millisecond

// rtaHandler returns a handler whose loop (kind: "readers", "frames" or
// "messages") is busy with the first value it gets, then reads on; the
// loop's error goes to errc.
func rtaHandler(kind string, errc chan<- error) handlerFunc {
	return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		first := true
		busy := func() {
			if first {
				first = false
				time.Sleep(rtaBusy)
			}
		}
		switch kind {
		case "readers":
			for _, r := range in.Readers() {
				busy()
				if _, err := io.Copy(io.Discard, r); err != nil {
					break
				}
			}
		case "frames":
			for range in.Frames() {
				busy()
			}
		default:
			for range in.Messages(0) {
				busy()
			}
		}
		errc <- in.Err()
		return in.Err()
	}
}

// rtaExpect reads the server's CLOSE and checks its code, then the code of
// in.Err() and of CloseInfo.
func rtaExpect(t *testing.T, c *rawClient, l *eventLog, errc <-chan error, want frames.CloseCode) {
	t.Helper()
	reason := c.expectClose(want)
	if err := waitWithin(t, errc, 3*time.Second, "the loop"); wsconn.CloseStatus(err) != want {
		t.Errorf("in.Err() = %v, want close code %d", err, want)
	}
	_ = c.nc.Close()
	info, _ := l.wait(t)
	if info.Code != want || info.Reason != reason {
		t.Errorf("CloseInfo %d %q, the wire %d %q", info.Code, info.Reason, want, reason)
	}
}

// docs/closing.md ("Protocol violations"): what the background reader
// cannot judge behind a busy body, here the data behind a frame the body
// is still reading, gives way to a bad header's 1002, which goes out at
// once. A Readers body is busy with the first message (its frame not yet
// read, so the background reader reads ahead from the middle of it);
// behind it come a complete text message that is not UTF-8 and then a
// frame header with RSV2 set: 1002, not 1007.
func TestCornerBusyReadersBodyKeptViolationBeforeBadHeader(t *testing.T) {
	errc := make(chan error, 1)
	l := newEventLog()
	url, _ := testServer(t, &wsconn.Config{Observer: l, PingInterval: -1}, rtaHandler("readers", errc))
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("first message"))
	time.Sleep(60 * time.Millisecond) // the body is busy, the background reader reads
	var b []byte
	b = append(b, maskedFrame(frames.Header{Op: frames.OpText, Fin: true}, []byte{'a', 0xff, 'b'})...)
	b = append(b, maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv2}, []byte("x"))...)
	c.write(b)
	rtaExpect(t, c, l, errc, frames.CloseProtocolError)
}

// The same with a Frames loop whose body is busy with the first fragment
// of a text message: the continuation kept behind it is not UTF-8, and a
// frame with RSV2 follows. judgeKept skips the UTF-8 of a message begun
// before the kept data ("it may be compressed"), so the header's 1002
// wins.
func TestCornerBusyFramesBodyKeptContinuationNotUTF8BeforeBadHeader(t *testing.T) {
	errc := make(chan error, 1)
	l := newEventLog()
	url, _ := testServer(t, &wsconn.Config{Observer: l, PingInterval: -1}, rtaHandler("frames", errc))
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("ab"))
	time.Sleep(60 * time.Millisecond)
	var b []byte
	b = append(b, maskedFrame(frames.Header{Op: frames.OpContinuation, Fin: true}, []byte{'c', 0xff})...)
	b = append(b, maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv2}, []byte("x"))...)
	c.write(b)
	rtaExpect(t, c, l, errc, frames.CloseProtocolError)
}

// docs/closing.md: the background reader judges kept data "as the loop
// would (their sequence, the message limit, UTF-8)". A Frames loop bounds
// each frame by MaxMessageSize (docs/handlers.md's table), but judgeKept
// uses the assembler's limit, which a Frames loop sets to 0: a kept frame
// over MaxMessageSize passes, and the bad header behind it (RSV2, 1002)
// decides the code instead of the 1009 the loop meets first.
func TestCornerBusyFramesBodyKeptFrameOverLimitBeforeBadHeader(t *testing.T) {
	errc := make(chan error, 1)
	l := newEventLog()
	url, _ := testServer(t, &wsconn.Config{Observer: l, PingInterval: -1, MaxMessageSize: 100}, rtaHandler("frames", errc))
	c := dialRaw(t, url)
	c.frame(frames.OpBinary, true, []byte("a"))
	time.Sleep(60 * time.Millisecond)
	var b []byte
	b = append(b, maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true}, make([]byte, 200))...)
	b = append(b, maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv2}, []byte("x"))...)
	c.write(b)
	rtaExpect(t, c, l, errc, frames.CloseMessageTooBig)
}

// The same gap with the peer's CLOSE behind the oversized kept frame
// (the case judgeKept was written for): the peer's 1000 is echoed though
// the loop, not busy, would have closed with 1009.
func TestCornerBusyFramesBodyKeptFrameOverLimitBeforeClose(t *testing.T) {
	errc := make(chan error, 1)
	l := newEventLog()
	url, _ := testServer(t, &wsconn.Config{Observer: l, PingInterval: -1, MaxMessageSize: 100}, rtaHandler("frames", errc))
	c := dialRaw(t, url)
	c.frame(frames.OpBinary, true, []byte("a"))
	time.Sleep(60 * time.Millisecond)
	var b []byte
	b = append(b, maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true}, make([]byte, 200))...)
	b = append(b, maskedFrame(frames.Header{Op: frames.OpClose, Fin: true}, closePayload(frames.CloseNormal, ""))...)
	c.write(b)
	rtaExpect(t, c, l, errc, frames.CloseMessageTooBig)
}

// A Messages body is busy; behind it the peer sends a valid message and
// then a frame over MaxFrameSize. The loop is running, so it meets them
// in order when the body returns (docs/handlers.md: "When the loop comes
// back, it reads the kept frames first, in order"): it yields the kept
// message, then ends with 1009, in agreement with the wire and CloseInfo.
// (Without a loop the background reader fails the connection at once:
// TestPeerAdvHugeLengthMetByBackgroundReader.)
func TestCornerBusyBodyMaxFrameSizeBehindKeptDataInOrder(t *testing.T) {
	errc := make(chan error, 1)
	got := make(chan []string, 1)
	l := newEventLog()
	h := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		var seen []string
		for m := range in.Messages(0) {
			seen = append(seen, string(m.Payload))
			if len(seen) == 1 {
				time.Sleep(200 * time.Millisecond) // busy: the rest is kept
			}
		}
		got <- seen
		errc <- in.Err()
		return in.Err()
	}
	url, _ := testServer(t, &wsconn.Config{Observer: l, PingInterval: -1, MaxFrameSize: 1000}, h)
	c := dialRaw(t, url)
	c.frame(frames.OpBinary, true, []byte("a"))
	time.Sleep(60 * time.Millisecond)
	var b []byte
	b = append(b, maskedFrame(frames.Header{Op: frames.OpText, Fin: true}, []byte("kept"))...)
	b = append(b, maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true}, make([]byte, 1001))...)
	c.write(b)
	rtaExpect(t, c, l, errc, frames.CloseMessageTooBig)
	if seen := waitWithin(t, got, 3*time.Second, "the loop"); fmt.Sprint(seen) != "[a kept]" {
		t.Fatalf("the loop got %q, want [a kept]", seen)
	}
}

// A bad header right behind the rest of the frame a Readers body is
// reading (no kept data in between): the body still reads its message to
// the end (its bytes arrived before the violation), and the loop then
// ends with the header's 1002, in agreement with the wire.
func TestCornerBusyReadersBodyFinishesItsFrameBeforeTheViolation(t *testing.T) {
	got := make(chan string, 1)
	errc := make(chan error, 1)
	l := newEventLog()
	h := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for _, r := range in.Readers() {
			head := make([]byte, 3)
			_, _ = io.ReadFull(r, head)
			time.Sleep(rtaBusy)
			rest, err := io.ReadAll(r)
			got <- string(head) + string(rest)
			if err != nil {
				break
			}
		}
		errc <- in.Err()
		return in.Err()
	}
	url, _ := testServer(t, &wsconn.Config{Observer: l, PingInterval: -1}, h)
	c := dialRaw(t, url)
	b := maskedFrame(frames.Header{Op: frames.OpText, Fin: true}, []byte("0123456789"))
	c.write(b[:len(b)-4]) // the body reads "012" and is busy; the rest follows
	time.Sleep(60 * time.Millisecond)
	c.write(append(b[len(b)-4:], maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv3}, []byte("x"))...))
	if s := waitWithin(t, got, 3*time.Second, "the body"); s != "0123456789" {
		t.Errorf("the body read %q, want the whole message", s)
	}
	rtaExpect(t, c, l, errc, frames.CloseProtocolError)
}

// docs/handlers.md ("The reading contract"): the data frames the
// background reader meets "it keeps for the loop ... When the loop comes
// back, it reads the kept frames first, in order"; the Inbound godoc: "a
// running loop yields them, in order". A busy Messages body, a valid
// message kept behind it, then a frame header with RSV2: the background
// reader now fails the connection at once and the kept message is never
// yielded, though a loop that was not busy yields it before meeting the
// violation. (Failing is allowed, RFC 6455 §7.1.7; the docs promise the
// kept data without exception.)
func TestCornerBusyBodyKeptMessageBeforeBadHeaderIsYielded(t *testing.T) {
	got := make(chan []string, 1)
	h := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		var texts []string
		for m := range in.Messages(0) {
			texts = append(texts, m.Text())
			if len(texts) == 1 {
				time.Sleep(rtaBusy)
			}
		}
		got <- texts
		return in.Err()
	}
	url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, h)
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("a"))
	time.Sleep(60 * time.Millisecond)
	c.write(append(maskedFrame(frames.Header{Op: frames.OpText, Fin: true}, []byte("kept")),
		maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv2}, []byte("x"))...))
	c.expectClose(frames.CloseProtocolError)
	if texts := waitWithin(t, got, 3*time.Second, "the loop"); len(texts) != 2 || texts[1] != "kept" {
		t.Fatalf("the loop got %q, want [a kept]", texts)
	}
}
