package wsconn_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvrw1Busy is how long a loop body stays busy in these tests: far past
// the 20 ms after which the background reader takes over.
const rvrw1Busy = 150 * time.Millisecond

// docs/handlers.md: a Readers reader "is valid only in its loop body";
// docs/closing.md: ErrClosed is "a message reader used after its loop
// body returned". A body hands its reader to a goroutine that is waiting
// on the socket for the next fragment when the body moves on (continue)
// or breaks out. The loop must not take the goroutine's interrupted read
// for the end of the message: with continue it goes on to the next
// message (the rest discarded), with break Err is nil and a next loop
// begins with the next message; the goroutine's Read fails with
// ErrClosed.
func TestReaderBlockedInAGoroutineWhenTheBodyEnds(t *testing.T) {
	for _, how := range []string{"continue", "break"} {
		t.Run(how, func(t *testing.T) {
			type result struct {
				seen   []string
				errs   []string
				lateRd error
			}
			res := make(chan result, 1)
			bodyDone := make(chan struct{})
			url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				var r result
				late := make(chan error, 1)
				first := true
				for _, rd := range in.Readers() {
					if !first {
						b, err := io.ReadAll(rd)
						r.seen = append(r.seen, string(b))
						if err != nil {
							r.errs = append(r.errs, "read: "+err.Error())
						}
						continue
					}
					first = false
					started := make(chan struct{})
					go func() {
						b := make([]byte, 2)
						_, _ = io.ReadFull(rd, b)
						close(started)
						_, err := rd.Read(make([]byte, 16)) // waits for the next fragment
						late <- err
					}()
					<-started
					time.Sleep(50 * time.Millisecond) // the goroutine waits on the socket
					close(bodyDone)
					if how == "break" {
						break
					}
				}
				r.errs = append(r.errs, fmt.Sprintf("first loop: %v", in.Err()))
				if how == "break" {
					for m := range in.Messages(0) {
						r.seen = append(r.seen, m.Text())
					}
					r.errs = append(r.errs, fmt.Sprintf("second loop: %v", in.Err()))
				}
				r.lateRd = <-late
				res <- r
				return nil
			})
			c := dialRaw(t, url)
			c.frame(frames.OpText, false, []byte("ab"))
			waitFor(t, bodyDone, "the body")
			c.frame(frames.OpContinuation, true, []byte("cd"))
			c.frame(frames.OpText, true, []byte("second"))
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			c.expectClose(frames.CloseNormal)
			r := waitFor(t, res, "the handler")
			want := "first loop: <nil>"
			if how == "break" {
				want += "|second loop: <nil>"
			}
			if got := strings.Join(r.errs, "|"); got != want {
				t.Errorf("loop errors %q, want %q", got, want)
			}
			if got := strings.Join(r.seen, "|"); got != "second" {
				t.Errorf("later messages %q, want [second]", got)
			}
			// The read was in flight when the body ended: it fails with
			// ErrClosed, or completes with the "cd" that may have come
			// first, never with a made-up end of the message.
			if r.lateRd != nil && !errors.Is(r.lateRd, wsconn.ErrClosed) {
				t.Errorf("the goroutine's Read after the body ended: %v, want ErrClosed (or the data)", r.lateRd)
			}
		})
	}
}

// docs/closing.md ("Protocol violations"): behind a busy body, a
// violation among the kept data decides the code, and "Either way the
// running loop still yields the messages kept before the CLOSE or the
// bad header, then ends with the connection's error"; the Inbound godoc:
// kept data frames "a running loop yields them, in order". A valid
// message kept ahead of the violation must reach the loop, as it does
// when the loop is not busy.
func TestKeptMessageBeforeAJudgedViolationIsYielded(t *testing.T) {
	for _, behind := range []string{"bad header", "close"} {
		t.Run(behind, func(t *testing.T) {
			got := make(chan []string, 1)
			errc := make(chan error, 1)
			url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				var texts []string
				for m := range in.Messages(0) {
					texts = append(texts, m.Text())
					if len(texts) == 1 {
						time.Sleep(rvrw1Busy)
					}
				}
				got <- texts
				errc <- in.Err()
				return in.Err()
			})
			c := dialRaw(t, url)
			c.frame(frames.OpText, true, []byte("a"))
			time.Sleep(60 * time.Millisecond) // the body is busy, the background reader reads
			var b []byte
			b = append(b, maskedFrame(frames.Header{Op: frames.OpText, Fin: true}, []byte("ok"))...)
			b = append(b, maskedFrame(frames.Header{Op: frames.OpText, Fin: true}, []byte{0xff})...)
			if behind == "close" {
				b = append(b, maskedFrame(frames.Header{Op: frames.OpClose, Fin: true}, closePayload(frames.CloseNormal, ""))...)
			} else {
				b = append(b, maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Rsv: frames.Rsv2}, []byte("x"))...)
			}
			c.write(b)
			c.expectClose(frames.CloseInvalidPayload)
			if err := waitFor(t, errc, "the loop"); wsconn.CloseStatus(err) != frames.CloseInvalidPayload {
				t.Errorf("in.Err() = %v, want 1007", err)
			}
			if texts := <-got; strings.Join(texts, "|") != "a|ok" {
				t.Errorf("the loop yielded %q, want [a ok]: the valid message kept before the violation is lost", texts)
			}
		})
	}
}

// docs/closing.md: "With Config.IdleTimeout set, a peer that sends no
// data frame for that long is closed with 1001 idle timeout", and a peer
// that does not answer a keep-alive PING within PongTimeout with 1001
// ping timeout; the one exception is "a busy loop body" whose kept data
// reached ReadAhead. A Readers body reads the head of a 1 MiB frame and
// breaks out (the rest, handlers.md says, is left to a next loop); the
// handler then waits on its context as handlers.md advises. The peer sent
// 8 KiB and went silent: no body is busy, and the timeout must strike.
func TestTimeoutsAfterReadersBreakMidHugeFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  wsconn.Config
		want error
	}{
		{"idle", wsconn.Config{PingInterval: -1, IdleTimeout: 200 * time.Millisecond}, wsconn.ErrIdleTimeout},
		{"ping", wsconn.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 100 * time.Millisecond}, wsconn.ErrPingTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ended := make(chan error, 1)
			cfg := tc.cfg
			cfg.CloseTimeout = 300 * time.Millisecond
			url, _ := testServer(t, &cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				for _, r := range in.Readers() {
					_, _ = io.ReadFull(r, make([]byte, 10))
					break
				}
				select {
				case <-ctx.Done():
					ended <- context.Cause(ctx)
				case <-time.After(2 * time.Second):
					ended <- nil
				}
				return nil
			})
			c := dialRaw(t, url)
			c.rvIterHeader(frames.OpBinary, true, 1<<20)
			c.write(make([]byte, 8<<10)) // zero mask: payload as is
			err := waitFor(t, ended, "the handler")
			if !errors.Is(err, tc.want) {
				t.Fatalf("the handler's context after a silent peer: %v, want %v within 2 s", err, tc.want)
			}
			c.expectClose(frames.CloseGoingAway)
		})
	}
}

// The Inbound godoc: "whenever nobody has been reading for 20 ms (no
// loop runs, or a loop body has been busy that long) a background task
// reads instead. It answers PINGs ... and takes the peer's CLOSE, which
// cancels the handler's context at once". A Readers body hands its
// reader to a goroutine and waits for it (valid use:
// TestReaderReadByAGoroutineTheBodyWaitsFor); the goroutine's Read waits
// a while on the socket for the next fragment, gets it and then works on
// it for long without reading. Nobody reads from then on: the peer's PING
// must be answered and its CLOSE must end the body's context.
func TestBackgroundReaderAfterALongReadInTheBody(t *testing.T) {
	cause := make(chan error, 1)
	gotFragment := make(chan struct{})
	url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for _, r := range in.Readers() {
			done := make(chan struct{})
			go func() {
				defer close(done)
				b := make([]byte, 4)
				_, _ = io.ReadFull(r, b) // "ab" now, "cd" after a wait on the socket
				close(gotFragment)
				<-ctx.Done() // long work, reading no more
			}()
			select {
			case <-done:
				cause <- context.Cause(ctx)
			case <-time.After(3 * time.Second):
				cause <- nil
			}
			break
		}
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("ab"))
	time.Sleep(100 * time.Millisecond) // the goroutine's Read waits on the socket past a few ticks
	c.frame(frames.OpContinuation, false, []byte("cd"))
	waitFor(t, gotFragment, "the goroutine's read")
	c.frame(frames.OpPing, true, []byte("p"))
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
	h, p, err := readFrame(c.br)
	if err != nil || h.Op != frames.OpPong || string(p) != "p" {
		t.Fatalf("got %v %q %v, want the PONG within 1 s", h.Op, p, err)
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	if err := waitFor(t, cause, "the body"); err == nil {
		t.Fatal("the peer's CLOSE did not end the busy body's context")
	}
	c.expectClose(frames.CloseNormal)
}
