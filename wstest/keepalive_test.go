package wstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// The keep-alive tests run on a fake clock: the intervals are the
// defaults, 30 s and 20 s, yet each test takes milliseconds. If the clock
// were not in control, every Expect below would wait for real time and
// time out after a second.

func keepAliveServer(t *testing.T, cfg wsconn.Config) (*wstest.Server, *wstest.Clock) {
	clk := wstest.NewClock()
	cfg.Clock = clk
	cfg.Logger = quiet
	// An echo server that answers "rtt" with the round-trip time its
	// keep-alive measured: only a PONG carrying the PING's payload sets it.
	h := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if m.Text() == "rtt" {
				m = messages.Text(s.RTT().String())
			}
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		return in.Err()
	}
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, h, &wstest.HandlerOptions{Config: &cfg}))
	return srv, clk
}

// dial connects to srv and waits until the server reads, with its
// keep-alive timer armed.
func dial(t *testing.T, srv *wstest.Server) *wstest.Client {
	c := srv.Dial(t, "/", nil)
	c.Timeout = time.Second
	c.WaitServerReading()
	return c
}

func TestFakeClockPingAnswered(t *testing.T) {
	srv, clk := keepAliveServer(t, wsconn.Config{})
	c := dial(t, srv)

	clk.Advance(wsconn.DefaultPingInterval)
	p := c.ExpectPing()
	if len(p) == 0 {
		t.Fatal("keep-alive PING without payload")
	}
	c.SendFrame(frames.Pong(p))
	c.WaitServerReading() // the server has read the PONG
	clk.Advance(wsconn.DefaultPongTimeout)
	c.SendText("still open")
	c.ExpectText("still open")
	c.Close()
}

func TestFakeClockPingUnansweredCloses1001(t *testing.T) {
	srv, clk := keepAliveServer(t, wsconn.Config{})
	c := dial(t, srv)
	start := time.Now()

	clk.Advance(wsconn.DefaultPingInterval)
	c.ExpectPing() // and stay silent
	c.WaitServerReading()
	clk.Advance(wsconn.DefaultPongTimeout)
	c.ExpectClose(frames.CloseGoingAway, "ping timeout")

	if d := time.Since(start); d > time.Second {
		t.Fatalf("50 s of keep-alive took %v of real time", d)
	}
}

func TestFakeClockExpectAnswersPings(t *testing.T) {
	srv, clk := keepAliveServer(t, wsconn.Config{})
	c := dial(t, srv)

	// The PING leaves at 30 s; the answer reaches the server at 31 s.
	clk.Advance(wsconn.DefaultPingInterval + time.Second)
	c.SendText("x")
	c.ExpectText("x") // reads the PING on the way and answers it
	c.SendText("rtt")
	c.ExpectText("1s")
	c.Close()
}

func TestFakeClockIgnorePings(t *testing.T) {
	srv, clk := keepAliveServer(t, wsconn.Config{})
	c := dial(t, srv)
	c.IgnorePings = true

	clk.Advance(wsconn.DefaultPingInterval + time.Second)
	c.SendText("x")
	c.ExpectText("x") // reads the PING on the way and leaves it unanswered
	c.SendText("rtt")
	c.ExpectText("0s")
	c.Close()
}

func TestFakeClockIdleTimeout(t *testing.T) {
	srv, clk := keepAliveServer(t, wsconn.Config{PingInterval: -1, IdleTimeout: time.Minute})
	c := dial(t, srv)

	clk.Advance(59 * time.Second)
	c.SendText("just in time")
	c.ExpectText("just in time")
	clk.Advance(59 * time.Second)
	c.SendFrame(frames.Ping([]byte("control frames do not count")))
	c.ExpectPong([]byte("control frames do not count"))
	// colibri looks every quarter of the timeout: the close comes at
	// most that much after it is due.
	clk.Advance(time.Second + time.Minute/4)
	c.ExpectClose(frames.CloseGoingAway, "idle timeout")
}

func TestFakeClockWriteOnlyHandler(t *testing.T) {
	// The handler never reads; colibri's background reader does, and the
	// keep-alive works the same.
	clk := wstest.NewClock()
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{},
		func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			<-ctx.Done()
			return nil
		}, &wstest.HandlerOptions{Config: &wsconn.Config{Clock: clk, Logger: quiet}}))
	c := srv.Dial(t, "/", nil)
	c.Timeout = time.Second
	// The client may see the 101 before the server has armed the
	// connection's timer; time moves only once it is armed.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := clk.WaitTimers(ctx, 1); err != nil {
		t.Fatalf("the connection's timer: %v", err)
	}
	// The background reader starts once nobody has read for 20 ms of the
	// connection's clock.
	clk.Advance(wsconn.DefaultPingInterval)
	c.ExpectPing()
	c.WaitServerReading()
	clk.Advance(wsconn.DefaultPongTimeout)
	c.ExpectClose(frames.CloseGoingAway, "ping timeout")
}

func TestWaitServerReadingNeedsMemory(t *testing.T) {
	srv := wstest.NewServer(t, wstest.Handler(struct{}{}, echo, echoHandler()))
	got := failure(t, func(tb testing.TB) { srv.Dial(tb, "/", nil).WaitServerReading() })
	wantFailure(t, got, "wstest: WaitServerReading needs a server from NewMemoryServer")
}
