package wsconn_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// rlLoop ranges over in with one of the three iterators, calling got for
// each message (or frame) it yields, and returns what the last body's
// read said (Readers only; nil otherwise).
type rlLoop struct {
	name string
	run  func(in *wsconn.Inbound, got func()) error
}

var rlLoops = []rlLoop{
	{"Frames", func(in *wsconn.Inbound, got func()) error {
		for range in.Frames() {
			got()
		}
		return nil
	}},
	{"Messages", func(in *wsconn.Inbound, got func()) error {
		for range in.Messages(0) {
			got()
		}
		return nil
	}},
	{"Readers", func(in *wsconn.Inbound, got func()) error {
		var rerr error
		for _, r := range in.Readers() {
			got()
			_, rerr = io.Copy(io.Discard, r)
		}
		return rerr
	}},
}

// rlOnce returns a func that closes ch the first time it is called.
func rlOnce(ch chan struct{}) func() {
	done := false
	return func() {
		if !done {
			done = true
			close(ch)
		}
	}
}

// A shutdown (through internal/group, as the router and app do) while a
// loop waits for the peer: the peer answers the 1001 at once with a clean
// CLOSE, and whichever reaches the loop first, the loop reports
// ErrShutdown (docs/closing.md, "the server is shutting down"). Each
// iterator, many connections, so that both orders occur.
func TestCornerShutdownAnsweredCleanlyEachLoop(t *testing.T) {
	for _, lp := range rlLoops {
		t.Run(lp.name, func(t *testing.T) {
			for i := range 15 {
				got := make(chan struct{})
				res := make(chan error, 1)
				url, g := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
					_ = lp.run(in, rlOnce(got))
					res <- in.Err()
					return in.Err()
				})
				c := dialRaw(t, url)
				c.frame(frames.OpText, true, []byte("hi"))
				waitFor(t, got, "the first message")
				go func() { _, _ = g.Shutdown(context.Background()) }()
				c.expectClose(frames.CloseGoingAway)
				c.frame(frames.OpClose, true, closePayload(frames.CloseGoingAway, ""))
				if err := waitFor(t, res, "the loop"); !errors.Is(err, wsconn.ErrShutdown) {
					t.Fatalf("run %d: in.Err() = %v, want ErrShutdown", i, err)
				}
				c.expectEOF()
			}
		})
	}
}

// A shutdown while a Readers body reads a message the peer began: the cut
// reader and in.Err both say ErrShutdown, whether the peer's clean answer
// or the wake-up reaches the read first.
func TestCornerShutdownCutsReaderWithTheCause(t *testing.T) {
	for i := range 30 {
		reading := make(chan struct{})
		res := make(chan [2]error, 1)
		url, g := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			var rerr error
			for _, r := range in.Readers() {
				close(reading)
				_, rerr = io.Copy(io.Discard, r)
				break
			}
			res <- [2]error{rerr, in.Err()}
			return nil
		})
		c := dialRaw(t, url)
		c.frame(frames.OpBinary, false, []byte("part"))
		waitFor(t, reading, "the body")
		go func() { _, _ = g.Shutdown(context.Background()) }()
		c.expectClose(frames.CloseGoingAway)
		c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
		got := waitFor(t, res, "the body")
		if !errors.Is(got[0], wsconn.ErrShutdown) || !errors.Is(got[1], wsconn.ErrShutdown) {
			t.Fatalf("run %d: reader %v, in.Err() %v; want ErrShutdown for both", i, got[0], got[1])
		}
		c.expectEOF()
	}
}

// After out.Close the handler reads on; the peer's answer ends the loop:
// nil for 1000, a *CloseError with the peer's code for 4000
// (docs/closing.md, "The closing handshake and TCP").
func TestCornerOutCloseThenPeerAnswer(t *testing.T) {
	for _, lp := range rlLoops {
		for _, answer := range []frames.CloseCode{frames.CloseNormal, 4000} {
			t.Run(lp.name+"/"+answer.String(), func(t *testing.T) {
				for i := range 10 {
					res := make(chan error, 1)
					url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
						_ = lp.run(in, func() { _ = out.Close(4000, "bye") })
						res <- in.Err()
						return nil
					})
					c := dialRaw(t, url)
					c.frame(frames.OpText, true, []byte("hi"))
					c.expectClose(4000)
					c.frame(frames.OpClose, true, closePayload(answer, ""))
					err := waitFor(t, res, "the loop")
					if answer == frames.CloseNormal && err != nil {
						t.Fatalf("run %d: in.Err() = %v after out.Close and the peer's 1000, want nil", i, err)
					}
					if answer != frames.CloseNormal && wsconn.CloseStatus(err) != answer {
						t.Fatalf("run %d: in.Err() = %v, want the peer's %v", i, err, answer)
					}
					c.expectEOF()
				}
			})
		}
	}
}

// The peer's CLOSE 1000 crosses the server's shutdown. What in.Err says
// must agree with what went on the wire: the server echoed 1000 (the
// peer's close came first: nil) or sent 1001 (the shutdown came first:
// ErrShutdown).
func TestCornerCrossingClosesAgreeWithTheWire(t *testing.T) {
	var echoed, ours int
	for i := range 40 {
		got := make(chan struct{})
		res := make(chan error, 1)
		url, g := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
			for range in.Messages(0) {
				close(got)
			}
			res <- in.Err()
			return nil
		})
		c := dialRaw(t, url)
		c.frame(frames.OpText, true, []byte("hi"))
		waitFor(t, got, "the message")
		go func() { _, _ = g.Shutdown(context.Background()) }()
		c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
		h, p := c.read()
		for h.Op != frames.OpClose {
			h, p = c.read()
		}
		code, _, _ := frames.ParseClose(p)
		err := waitFor(t, res, "the loop")
		switch code {
		case frames.CloseNormal:
			echoed++
			if err != nil {
				t.Fatalf("run %d: the server echoed 1000 but in.Err() = %v", i, err)
			}
		case frames.CloseGoingAway:
			ours++
			if !errors.Is(err, wsconn.ErrShutdown) {
				t.Fatalf("run %d: the server sent 1001 but in.Err() = %v", i, err)
			}
		default:
			t.Fatalf("run %d: close %v", i, code)
		}
		c.expectEOF()
	}
	t.Logf("echoed 1000: %d, 1001 first: %d", echoed, ours)
}

// A sibling task fails while the handler ranges; the peer answers the
// task's close cleanly (1000) or by echoing its code: either way in.Err
// carries the task's code (a *CloseError) or is the task's error (any
// other error, 1011).
func TestCornerFailedTaskIsTheLoopsError(t *testing.T) {
	errTask := errors.New("task broke")
	cases := []struct {
		name string
		err  error
		code frames.CloseCode
	}{
		{"CloseError", &wsconn.CloseError{Code: 4001, Reason: "task says no"}, 4001},
		{"plain", errTask, frames.CloseInternalError},
	}
	for _, tc := range cases {
		for _, echo := range []bool{false, true} {
			name := tc.name + "/answer1000"
			if echo {
				name = tc.name + "/echo"
			}
			t.Run(name, func(t *testing.T) {
				for i := range 10 {
					fire := make(chan struct{})
					res := make(chan error, 1)
					url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
						_ = s.Go(func(context.Context) error {
							<-fire
							return tc.err
						})
						for range in.Messages(0) {
							close(fire)
						}
						res <- in.Err()
						return in.Err()
					})
					c := dialRaw(t, url)
					c.frame(frames.OpText, true, []byte("go"))
					c.expectClose(tc.code)
					answer := frames.CloseNormal
					if echo {
						answer = tc.code
					}
					c.frame(frames.OpClose, true, closePayload(answer, ""))
					err := waitFor(t, res, "the loop")
					if wsconn.CloseStatus(tc.err) != 0 {
						if wsconn.CloseStatus(err) != tc.code {
							t.Fatalf("run %d: in.Err() = %v, want code %v", i, err, tc.code)
						}
					} else if !echo && !errors.Is(err, errTask) {
						t.Fatalf("run %d: in.Err() = %v, want the task's error", i, err)
					} else if echo && err == nil {
						t.Fatalf("run %d: in.Err() = nil after the task failed", i)
					}
					c.expectEOF()
				}
			})
		}
	}
}

// A task ranges over the Inbound; the handler returns nil. The godoc of
// loopOutcome (state.go) says: "once the handler returned, loops end
// cleanly". The task's loop is cut by the handler's return (its context
// ends with a colibri-made 1000 cause) or by the peer's clean answer,
// depending on which reaches it first; both must say the same, nil.
func TestCornerSiblingLoopAfterHandlerReturned(t *testing.T) {
	for i := range 20 {
		got := make(chan struct{})
		res := make(chan error, 1)
		url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			_ = s.Go(func(context.Context) error {
				for range in.Messages(0) {
					close(got)
				}
				res <- in.Err()
				return nil
			})
			select {
			case <-got:
			case <-time.After(10 * time.Second):
			}
			return nil
		})
		c := dialRaw(t, url)
		c.frame(frames.OpText, true, []byte("hi"))
		c.expectClose(frames.CloseNormal)
		c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
		if err := waitFor(t, res, "the task's loop"); err != nil {
			t.Fatalf("run %d: the task's in.Err() = %v after the handler returned nil, want nil", i, err)
		}
		c.expectEOF()
	}
}
