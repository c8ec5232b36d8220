package wstest_test

// Review of wstest's promises that the existing tests leave open: the
// Client after it read the server's CLOSE with ReadFrame, the fake
// clock's timer count and CloseInfo.Duration, and whether in-memory and
// loopback servers end a session the same way.

import (
	"context"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// rvObserver hands over the CloseInfo of every connection.
type rvObserver struct {
	wsconn.NopObserver
	closed chan wsconn.CloseInfo
}

func newRVObserver() *rvObserver { return &rvObserver{closed: make(chan wsconn.CloseInfo, 16)} }

func (o *rvObserver) ConnOpened(*wsconn.Conn) wsconn.ConnObserver { return o }
func (o *rvObserver) Closed(info wsconn.CloseInfo)                { o.closed <- info }

// rvServer runs handler with cfg (its Observer set to a new rvObserver)
// in memory or on loopback.
func rvServer(t *testing.T, memory bool, cfg wsconn.Config, handler wsconn.Handler[struct{}]) (*wstest.Server, *rvObserver) {
	obs := newRVObserver()
	cfg.Logger = quiet
	cfg.Observer = obs
	h := wstest.Handler(struct{}{}, handler, &wstest.HandlerOptions{Config: &cfg})
	if memory {
		return wstest.NewMemoryServer(t, h), obs
	}
	return wstest.NewServer(t, h), obs
}

// Client.Close "sends a CLOSE with 1000 unless one was sent already ...,
// reads past any data the server still sends until the server's CLOSE,
// and waits for the server to close the transport". A test that read the
// server's CLOSE with ReadFrame (the documented way to look at a frame
// as it came) and then calls Close to complete the handshake has a
// server that did everything right: it sent its CLOSE, gets the client's
// answer and closes the transport. Close nevertheless looks for a second
// CLOSE and fails the test with "no CLOSE from the server".
func TestClientCornerCloseAfterReadFrameReadTheServersClose(t *testing.T) {
	for _, memory := range []bool{true, false} {
		srv, obs := rvServer(t, memory, wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			return &wsconn.CloseError{Code: 4000, Reason: "bye"}
		})
		got := failure(t, func(tb testing.TB) {
			c := srv.Dial(tb, "/", nil)
			h, p := c.ReadFrame()
			if code, _, _ := frames.ParseClose(p); h.Op != frames.OpClose || code != 4000 {
				tb.Fatalf("first frame %v %q, want CLOSE 4000", h.Op, p)
			}
			c.Close()
		})
		if got != "" {
			t.Errorf("memory %v: Close after ReadFrame returned the server's CLOSE: %s", memory, got)
		}
		if info := waitFor(t, "CloseInfo", obs.closed); info.Code != 4000 || info.By != wsconn.SideLocal {
			t.Errorf("memory %v: server's CloseInfo %+v, want 4000 by the server", memory, info)
		}
	}
}

// The in-memory transport "behaves like a loopback socket": the server's
// CloseInfo is the same over both for each way a test client can end a
// session (Close, SendClose+ExpectClose, CloseNow, Server.Close), and
// Duration is measured on the fake clock when one is configured.
func TestClientCornerCloseInfoSameInMemoryAndOnLoopback(t *testing.T) {
	type outcome struct {
		code   frames.CloseCode
		reason string
		by     wsconn.Side
	}
	ways := []struct {
		name string
		end  func(t *testing.T, srv *wstest.Server, c *wstest.Client)
		want outcome
	}{
		{"Close", func(t *testing.T, _ *wstest.Server, c *wstest.Client) { c.Close() },
			outcome{frames.CloseNormal, "", wsconn.SidePeer}},
		{"SendClose 4001", func(t *testing.T, _ *wstest.Server, c *wstest.Client) {
			c.SendClose(4001, "done")
			c.ExpectClose(4001, "done")
		}, outcome{4001, "done", wsconn.SidePeer}},
		{"CloseNow", func(t *testing.T, _ *wstest.Server, c *wstest.Client) { c.CloseNow() },
			outcome{frames.CloseAbnormal, "connection closed without a close frame", wsconn.SidePeer}},
		{"Server.Close", func(t *testing.T, srv *wstest.Server, _ *wstest.Client) { srv.Close() },
			outcome{frames.CloseAbnormal, "connection closed", wsconn.SidePeer}},
	}
	for _, way := range ways {
		for _, memory := range []bool{true, false} {
			clk := wstest.NewClock()
			srv, obs := rvServer(t, memory, wsconn.Config{Clock: clk}, echo)
			c := srv.Dial(t, "/", nil)
			c.SendText("hi")
			c.ExpectText("hi")
			clk.Advance(7 * time.Second)
			way.end(t, srv, c)
			info := waitFor(t, "CloseInfo", obs.closed)
			got := outcome{info.Code, info.Reason, info.By}
			if got != way.want {
				t.Errorf("%s, memory %v: CloseInfo %+v, want %+v", way.name, memory, got, way.want)
			}
			if info.Duration != 7*time.Second {
				t.Errorf("%s, memory %v: Duration %v, want the fake clock's 7s", way.name, memory, info.Duration)
			}
			if info.MessagesIn != 1 || info.MessagesOut != 1 {
				t.Errorf("%s, memory %v: messages in %d out %d, want 1 and 1", way.name, memory, info.MessagesIn, info.MessagesOut)
			}
		}
	}
}

// Clock.Timers: "Each open connection with keep-alive or an idle timeout
// has one" -- one, with both on, and none once the connection is gone,
// so that Advance after a test's connections closed fires nothing.
func TestClientCornerClockOneTimerPerConnection(t *testing.T) {
	clk := wstest.NewClock()
	srv, obs := rvServer(t, true, wsconn.Config{Clock: clk, PingInterval: 30 * time.Second, IdleTimeout: time.Minute}, echo)
	a := srv.Dial(t, "/", nil)
	b := srv.Dial(t, "/", nil)
	a.WaitServerReading()
	b.WaitServerReading()
	if n := clk.Timers(); n != 2 {
		t.Fatalf("two open connections with keep-alive and an idle timeout: %d timers, want 2", n)
	}
	a.Close()
	waitFor(t, "first close", obs.closed)
	b.CloseNow()
	waitFor(t, "second close", obs.closed)
	if n := clk.Timers(); n != 0 {
		t.Fatalf("no open connection: %d timers armed, want 0", n)
	}
}

// Client methods after CloseNow fail the test with a message, whatever
// they are, and never block until Timeout.
func TestClientCornerMethodsAfterCloseNow(t *testing.T) {
	srv, _ := rvServer(t, true, wsconn.Config{}, echo)
	for _, m := range []struct {
		name string
		call func(c *wstest.Client)
		want string
	}{
		{"ExpectText", func(c *wstest.Client) { c.ExpectText("x") }, `wstest: want text "x": the client is closed`},
		{"ExpectClose", func(c *wstest.Client) { c.ExpectClose(frames.CloseNormal, "") }, `wstest: want close 1000 normal closure "": the client is closed`},
		{"ReadFrame", func(c *wstest.Client) { c.ReadFrame() }, `wstest: read frame: the client is closed`},
		{"SendRaw", func(c *wstest.Client) { c.SendRaw([]byte{1}) }, `wstest: send raw bytes: the client is closed`},
		{"Close", func(c *wstest.Client) { c.Close() }, ``},
	} {
		start := time.Now()
		got := failure(t, func(tb testing.TB) {
			c := srv.Dial(tb, "/", nil)
			c.Timeout = 3 * time.Second
			c.CloseNow()
			m.call(c)
		})
		if got != m.want {
			t.Errorf("%s after CloseNow: failure %q, want %q", m.name, got, m.want)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s after CloseNow took %v", m.name, d)
		}
	}
}
