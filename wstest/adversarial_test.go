package wstest_test

// Adversarial tests of package wstest against docs/testing.md and its doc
// comments: the in-memory connections against the net.Conn contract, the
// fake clock under concurrency and at its edges, parallel tests, and
// failure reports for servers that break the protocol in ways the other
// tests do not try.

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// memPipe returns both ends of one in-memory connection of srv: the
// client's from NetDial and the server's, hijacked from the http.Server.
func memPipe(t *testing.T, srv *wstest.Server, conns <-chan net.Conn) (net.Conn, net.Conn) {
	t.Helper()
	c, err := srv.NetDial(t.Context(), "tcp", "ignored:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("GET /pipe HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-conns:
		return c, s
	case <-time.After(guard):
		t.Fatal("no hijacked connection")
		return nil, nil
	}
}

func hijackServer(t *testing.T) (*wstest.Server, <-chan net.Conn) {
	conns := make(chan net.Conn, 1)
	srv := wstest.NewMemoryServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		if brw.Reader.Buffered() != 0 {
			t.Errorf("hijack: %d bytes buffered", brw.Reader.Buffered())
		}
		conns <- nc
	}))
	return srv, conns
}

// docs/testing.md: "In-memory connections support deadlines and
// half-close, which colibri's closing handshake and net/http both rely
// on" — they are net.Conns, so they must pass the x/net conformance
// suite for net.Conn (deadlines, concurrent methods, Close unblocking).
func TestAdvMemConnConformance(t *testing.T) {
	srv, conns := hijackServer(t)
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		c1, c2 := memPipe(t, srv, conns)
		return c1, c2, func() { _ = c1.Close(); _ = c2.Close() }, nil
	})
}

// A deadline moved earlier, or cleared and set again, while a Read or a
// Write is blocked applies to that blocked call (net.Conn: "applies to all
// future and pending I/O").
func TestAdvMemConnDeadlineChangedWhileBlocked(t *testing.T) {
	srv, conns := hijackServer(t)
	c, s := memPipe(t, srv, conns)
	defer c.Close()
	defer s.Close()
	for _, name := range []string{"earlier", "cleared then set"} {
		if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			var b [1]byte
			_, err := c.Read(b[:])
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond)
		if name == "cleared then set" {
			_ = c.SetReadDeadline(time.Time{})
			time.Sleep(10 * time.Millisecond)
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		select {
		case err := <-errc:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("%s: Read error %v, want a deadline error", name, err)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("%s: Read error %v is not a net.Error timeout", name, err)
			}
		case <-time.After(guard):
			_ = c.SetReadDeadline(time.Now())
			<-errc
			t.Fatalf("%s: the blocked Read ignored the new deadline", name)
		}
	}
	// A Write blocked on a full buffer, and a deadline in the past set
	// while it waits.
	if err := c.SetWriteDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, 2<<20)) // more than the 1 MiB buffer
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = c.SetWriteDeadline(time.Now().Add(-time.Second))
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("blocked Write: %v, want a deadline error", err)
		}
	case <-time.After(guard):
		_ = c.Close()
		<-errc
		t.Fatal("the blocked Write ignored a past deadline")
	}
}

// Half-close (docs/testing.md): after CloseWrite the peer reads what was
// written, then io.EOF, and can still write back; the writer's own
// writes fail.
func TestAdvMemConnHalfCloseBothWays(t *testing.T) {
	srv, conns := hijackServer(t)
	c, s := memPipe(t, srv, conns)
	defer c.Close()
	defer s.Close()
	if _, err := c.Write([]byte("last")); err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("Write after CloseWrite: no error")
	}
	_ = s.SetReadDeadline(time.Now().Add(guard))
	got, err := bufio.NewReader(s).ReadString(0)
	if got != "last" || err == nil || err.Error() != "EOF" {
		t.Errorf("server read %q, %v; want \"last\", EOF", got, err)
	}
	if _, err := s.Write([]byte("reply")); err != nil {
		t.Fatalf("server write after the client's half-close: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(guard))
	b := make([]byte, 5)
	if n, err := c.Read(b); err != nil || string(b[:n]) != "reply" {
		t.Errorf("client read %q, %v", b[:n], err)
	}
}

// Clock: "A Clock is safe for concurrent use" — timers armed, stopped
// and reset from many goroutines while others advance: each armed timer
// fires at most once per arming, never after a successful Stop, and Now
// never goes backwards.
func TestAdvClockConcurrentUse(t *testing.T) {
	clk := wstest.NewClock()
	const n = 200
	var fired [n]atomic.Int32
	var stopped [n]atomic.Bool
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var last atomic.Int64
	last.Store(clk.Now().UnixNano())
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				clk.Advance(time.Millisecond)
				now := clk.Now().UnixNano()
				for {
					old := last.Load()
					if now <= old || last.CompareAndSwap(old, now) {
						break
					}
				}
			}
		}()
	}
	var armers sync.WaitGroup
	for i := 0; i < n; i++ {
		armers.Add(1)
		go func() {
			defer armers.Done()
			tm := clk.AfterFunc(time.Duration(i%7)*time.Millisecond, func() { fired[i].Add(1) })
			if i%3 == 0 && tm.Stop() {
				stopped[i].Store(true)
			}
		}()
	}
	armers.Wait()
	if err := clk.WaitTimers(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	// Let the advancers drain every timer still due.
	deadline := time.Now().Add(guard)
	for clk.Timers() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if k := clk.Timers(); k != 0 {
		t.Fatalf("%d timers still armed", k)
	}
	for i := range n {
		f := fired[i].Load()
		switch {
		case stopped[i].Load() && f != 0:
			t.Errorf("timer %d fired %d times after a successful Stop", i, f)
		case !stopped[i].Load() && f != 1:
			t.Errorf("timer %d fired %d times, want 1", i, f)
		}
	}
}

// Clock edges (docs/testing.md "Time: the fake clock"): zero and
// negative delays are due at once; a timer re-armed from its own callback
// within d fires again in the same Advance; a timer stopped by an earlier
// callback does not fire; timers due at the same instant fire in the
// order they were (re)armed; Now reads each timer's due time.
func TestAdvClockEdges(t *testing.T) {
	clk := wstest.NewClock()
	start := clk.Now()
	var order []string
	var seen []time.Duration
	rec := func(name string) func() {
		return func() {
			order = append(order, name)
			seen = append(seen, clk.Now().Sub(start))
		}
	}
	clk.AfterFunc(0, rec("zero"))
	clk.AfterFunc(-time.Hour, rec("negative"))
	clk.Advance(0)
	if strings.Join(order, ",") != "zero,negative" || seen[0] != 0 || seen[1] != 0 {
		t.Fatalf("Advance(0): %v at %v", order, seen)
	}
	if clk.Now() != start {
		t.Fatalf("Advance(0) moved the clock")
	}
	order, seen = nil, nil

	var tick wsconn.Timer
	count := 0
	tick = clk.AfterFunc(10*time.Second, func() {
		rec("tick")()
		count++
		tick.Reset(10 * time.Second)
	})
	victim := clk.AfterFunc(25*time.Second, rec("victim"))
	clk.AfterFunc(15*time.Second, func() {
		rec("killer")()
		if !victim.Stop() {
			t.Error("Stop of a pending timer reported false")
		}
	})
	a := clk.AfterFunc(40*time.Second, rec("a"))
	clk.AfterFunc(40*time.Second, rec("b"))
	a.Reset(40 * time.Second) // re-armed after b: fires after it at the same instant
	clk.Advance(40 * time.Second)
	want := "tick,killer,tick,tick,b,a,tick" // the last tick was re-armed (at 30s) after a and b
	if got := strings.Join(order, ","); got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
	wantAt := []time.Duration{10, 15, 20, 30, 40, 40, 40}
	for i, d := range wantAt {
		if seen[i] != d*time.Second {
			t.Errorf("%s ran at %v, want %v", order[i], seen[i], d*time.Second)
		}
	}
	if clk.Now().Sub(start) != 40*time.Second {
		t.Errorf("Now after Advance = %v", clk.Now().Sub(start))
	}
	if clk.Timers() != 1 || count != 4 {
		t.Errorf("%d timers armed, tick ran %d times", clk.Timers(), count)
	}
	if victim.Stop() || victim.Reset(time.Second) {
		t.Error("Stop/Reset of a stopped timer reported it armed")
	}
	if !tick.Stop() {
		t.Error("Stop of the re-armed tick reported false")
	}
	// A negative Advance does not move time back nor fire anything.
	clk.Advance(-time.Hour)
	if clk.Now().Sub(start) != 40*time.Second {
		t.Errorf("negative Advance moved the clock to %v", clk.Now().Sub(start))
	}
	if !victim.Stop() {
		t.Error("victim re-armed by Reset is not armed")
	}
}

// docs/testing.md: servers and clients close with their test — also with
// t.Parallel, each test with its own server, clock and client.
func TestAdvParallelTests(t *testing.T) {
	for i := range 6 {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			clk := wstest.NewClock()
			srv := memEcho(t, wsconn.Config{Clock: clk, PingInterval: 30 * time.Second, PongTimeout: 10 * time.Second})
			c := srv.Dial(t, "/", nil)
			c.WaitServerReading()
			msg := strings.Repeat("x", i*1000)
			c.SendText(msg)
			c.ExpectText(msg)
			c.WaitServerReading()
			clk.Advance(30 * time.Second)
			c.ExpectPing()
			c.WaitServerReading()
			clk.Advance(10 * time.Second)
			c.ExpectClose(frames.CloseGoingAway, "ping timeout")
		})
	}
}

// The Expect methods fail the test, from its goroutine, with a message
// that says what came, for server misbehaviour the other tests do not
// send.
func TestAdvExpectFailuresForBrokenServers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		send   func(p *rawPeer)
		expect func(c *wstest.Client)
		want   string
	}{
		{"invalid UTF-8 split across fragments", func(p *rawPeer) {
			p.write(frames.OpText, false, 0, []byte("a\xed"))
			p.write(frames.OpContinuation, true, 0, []byte("\xa0\x80"))
		}, func(c *wstest.Client) { c.ExpectText("x") }, `wstest: want text "x": server sent an invalid message: invalid UTF-8 in text message`},
		{"text ending inside a code point", func(p *rawPeer) {
			p.write(frames.OpText, false, 0, []byte("a\xf0\x9f"))
			p.write(frames.OpContinuation, true, 0, []byte("\x98"))
		}, func(c *wstest.Client) { c.ExpectMessage() }, `wstest: want a message: server sent an invalid message: invalid UTF-8 in text message`},
		{"masked server frame", func(p *rawPeer) {
			h := frames.Header{Op: frames.OpClose, Fin: true, Masked: true, Length: 2, Mask: [4]byte{1, 2, 3, 4}}
			var hb [frames.MaxHeaderSize]byte
			n := frames.PutHeader(hb[:], h)
			body := closePayload(1000, "")
			frames.Mask(body, h.Mask, 0)
			p.writeRaw(append(hb[:n:n], body...))
		}, func(c *wstest.Client) { c.ExpectClose(1000, "") }, `wstest: want close 1000 normal closure "": server broke the protocol: server frame masked (header {Op:close Fin:true Rsv:0 Masked:true Mask:[1 2 3 4] Length:2})`},
		{"one-byte close payload", func(p *rawPeer) { p.write(frames.OpClose, true, 0, []byte{3}) },
			func(c *wstest.Client) { c.ExpectClose(1000, "") }, `wstest: want close 1000 normal closure "", got a CLOSE with an invalid payload 03: close payload of one byte`},
		{"1005 on the wire", func(p *rawPeer) { p.write(frames.OpClose, true, 0, closePayload(1005, "")) },
			func(c *wstest.Client) { c.ExpectClose(frames.CloseNoStatus, "") }, `wstest: want close 1005 no status received "", got a CLOSE with an invalid payload 03 ed: invalid close code`},
		{"close reason not UTF-8", func(p *rawPeer) { p.write(frames.OpClose, true, 0, closePayload(4000, "\xff")) },
			func(c *wstest.Client) { c.ExpectClose(4000, "\xff") }, `wstest: want close 4000 (application) "\xff", got a CLOSE with an invalid payload 0f a0 ff: close reason is not valid UTF-8`},
		{"close instead of a message", func(p *rawPeer) { p.write(frames.OpClose, true, 0, closePayload(4000, "bye")) },
			func(c *wstest.Client) { c.ExpectBinary([]byte{1}) }, `wstest: want binary [01], got close 4000 (application) "bye"`},
		{"message instead of a ping", func(p *rawPeer) { p.write(frames.OpBinary, true, 0, []byte{7}) },
			func(c *wstest.Client) { c.ExpectPing() }, `wstest: want ping, got binary [07]`},
		{"message instead of a close", func(p *rawPeer) {
			p.write(frames.OpPong, true, 0, nil)
			p.write(frames.OpText, true, 0, []byte("late"))
		}, func(c *wstest.Client) { c.ExpectClose(1000, "") }, `wstest: want close 1000 normal closure "", got text "late"`},
		{"wrong pong payload", func(p *rawPeer) { p.write(frames.OpPong, true, 0, []byte("b")) },
			func(c *wstest.Client) { c.ExpectPong([]byte("a")) }, `wstest: want pong "a", got pong "b"`},
		{"64-bit length with the MSB", func(p *rawPeer) { p.writeRaw([]byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}) },
			func(c *wstest.Client) { c.ExpectMessage() }, `wstest: want a message: server sent a bad frame header 82 7f 80 00 00 00 00 00 00 01: 64-bit payload length with the most significant bit set`},
		{"transport closed mid-frame", func(p *rawPeer) { p.writeRaw([]byte{0x81, 5, 'a', 'b'}) },
			func(c *wstest.Client) { c.ExpectText("abcde") }, `wstest: want text "abcde": the server closed the connection in the middle of a frame`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, done := scripted(t, tc.send)
			got := failure(t, func(tb testing.TB) { tc.expect(srv.Dial(tb, "/", nil)) })
			wantFailure(t, got, tc.want)
			waitFor(t, "script", done)
		})
	}
}

// ExpectClose answers a PING that comes before the CLOSE (docs/testing.md:
// the Expect methods answer PINGs on their way) and still echoes the code.
func TestAdvExpectCloseAnswersPingOnTheWay(t *testing.T) {
	srv, done := scripted(t, func(p *rawPeer) {
		p.write(frames.OpPing, true, 0, []byte("p1"))
		p.write(frames.OpClose, true, 0, closePayload(3000, "r"))
		p.expectFrame(frames.OpPong, []byte("p1"))
		p.expectFrame(frames.OpClose, closePayload(3000, ""))
	})
	wantFailure(t, failure(t, func(tb testing.TB) { srv.Dial(tb, "/", nil).ExpectClose(3000, "r") }), "")
	waitFor(t, "script", done)
}

// docs/testing.md: "c.Timeout bounds each call"; Client.Timeout: "bounds
// each Send and Expect call". A server whose CLOSE comes late and that
// then keeps the transport open must fail ExpectClose within about one
// Timeout, not two.
func TestAdvExpectCloseBoundedByOneTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	release := make(chan struct{})
	srv, done := scripted(t, func(p *rawPeer) {
		time.Sleep(300 * time.Millisecond)
		p.write(frames.OpClose, true, 0, closePayload(frames.CloseNormal, ""))
		_, _, _ = p.readFrame()
		<-release
	})
	var start time.Time
	got := failure(t, func(tb testing.TB) {
		c := srv.Dial(tb, "/", nil)
		c.Timeout = timeout
		start = time.Now()
		c.ExpectClose(frames.CloseNormal, "")
	})
	elapsed := time.Since(start)
	close(release)
	waitFor(t, "script", done)
	if got == "" {
		t.Fatal("ExpectClose passed though the server kept the connection open")
	}
	if elapsed > timeout+200*time.Millisecond {
		t.Errorf("ExpectClose with Timeout %v took %v", timeout, elapsed)
	}
}
