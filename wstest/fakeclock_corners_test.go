package wstest_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// Keep-alive and the idle timeout together, on several connections
// sharing one fake clock: PingInterval 30 s, PongTimeout 10 s,
// IdleTimeout 100 s. Each client sends "hi" at t=0 and then only answers
// PINGs. The PINGs leave at 30, 60 and 90 s (the connection's ticks are
// 0.02 s after its start, then every quarter interval, and a PING is
// timed from the tick before the last PONG was seen); the idle timeout
// strikes at the tick at 100.02 s, while the last PING is answered.

func cornerConfig(clk *wstest.Clock) *wsconn.Config {
	return &wsconn.Config{Clock: clk, Logger: quiet,
		PingInterval: 30 * time.Second, PongTimeout: 10 * time.Second, IdleTimeout: 100 * time.Second}
}

// cornerServer echoes every message, reading in a loop.
func cornerServer(t *testing.T, clk *wstest.Clock) *wstest.Server {
	return memEcho(t, *cornerConfig(clk))
}

// cornerDial opens n clients that each send "hi" at t=0, with the server
// reading again afterwards.
func cornerDial(t *testing.T, srv *wstest.Server, n int) []*wstest.Client {
	var cs []*wstest.Client
	for range n {
		c := srv.Dial(t, "/", nil)
		c.Timeout = 2 * time.Second
		c.SendText("hi")
		c.ExpectText("hi")
		c.WaitServerReading()
		cs = append(cs, c)
	}
	return cs
}

// cornerKeepAlive moves the clock to 121 s, answering the PINGs at 30, 60
// and 90 s and waiting, before each Advance, until the server has read
// every PONG.
func cornerKeepAlive(clk *wstest.Clock, cs []*wstest.Client) {
	clk.Advance(31 * time.Second)
	for range 3 {
		for _, c := range cs {
			c.SendFrame(frames.Pong(c.ExpectPing()))
		}
		for _, c := range cs {
			c.WaitServerReading()
		}
		clk.Advance(30 * time.Second)
	}
}

// The idle timeout wins over a keep-alive that the peer answers, on every
// connection of a shared clock, whatever order their timers fire in. The
// frames are read one by one: a PING sent after the connection failed (see
// the test below) is skipped, not answered.
func TestFakeClockCornerIdleBeatsAnsweredPings(t *testing.T) {
	clk := wstest.NewClock()
	srv := cornerServer(t, clk)
	cs := cornerDial(t, srv, 2)
	cornerKeepAlive(clk, cs)
	for i, c := range cs {
		for {
			h, p := c.ReadFrame()
			if h.Op == frames.OpPing {
				continue
			}
			if h.Op != frames.OpClose {
				t.Fatalf("client %d: want CLOSE, got %v %q", i, h.Op, p)
			}
			code, reason, err := frames.ParseClose(p)
			if err != nil || code != frames.CloseGoingAway || reason != "idle timeout" {
				t.Fatalf("client %d: want CLOSE 1001 \"idle timeout\", got %v %q (%v)", i, code, reason, err)
			}
			break
		}
	}
}

// Two connections on one fake clock fail with "idle timeout", repeated on
// six connections with more Ps than CPUs, so that goroutines get
// preempted while holding locks, and ended with ExpectClose, which answers
// PINGs on the way. The failing tick's CLOSE could wait behind the socket
// lock while the connection's loop, ending, re-armed the timer; the timer
// then kept ticking as if the connection were open and queued a keep-alive
// PING ahead of the CLOSE, which ExpectClose answered on a transport
// already closed (about 1 run in 300 at GOMAXPROCS=8 on two cores). Once
// closing has begun, ticks now serve the background reader alone.
func TestFakeClockCornerNoPingAfterIdleFail(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))

	for round := range 200 {
		ok := t.Run("", func(t *testing.T) {
			clk := wstest.NewClock()
			srv := cornerServer(t, clk)
			cs := cornerDial(t, srv, 6)
			cornerKeepAlive(clk, cs)
			for _, c := range cs {
				c.ExpectClose(frames.CloseGoingAway, "idle timeout")
			}
		})
		if !ok {
			t.Fatalf("round %d failed", round)
		}
	}
}
