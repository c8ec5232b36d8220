package wstest_test

// Corner tests of package wstest: its client over real loopback sockets
// against independent servers (gorilla/websocket, coder/websocket) as well
// as colibri's, its Timeout, its servers' shutdown, and the fake clock.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// cornerGuard bounds every wait of these tests; it never synchronises.
const cornerGuard = 10 * time.Second

// cornerTB is a testing.TB whose Fatalf and Errorf record the failure
// instead of failing the test; Fatalf ends the goroutine as testing.T's
// does. The rest, Cleanup in particular, is the real test's.
type cornerTB struct {
	testing.TB
	mu        sync.Mutex
	msg       string
	capturing bool // false: failures go to the real test
}

func (r *cornerTB) Helper() {}

func (r *cornerTB) Fatalf(format string, args ...any) {
	r.mu.Lock()
	capturing := r.capturing
	r.mu.Unlock()
	if !capturing {
		r.TB.Fatalf(format, args...)
	}
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *cornerTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.capturing {
		r.TB.Errorf(format, args...)
		return
	}
	if r.msg == "" {
		r.msg = fmt.Sprintf(format, args...)
	}
}

// capture runs f on a goroutine of its own and returns the failure it
// reported through r, or "".
func (r *cornerTB) capture(f func()) string {
	r.mu.Lock()
	r.msg, r.capturing = "", true
	r.mu.Unlock()
	inOwnGoroutine(f)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.capturing = false
	return r.msg
}

// cornerFailure runs f on a goroutine of its own, as a test would, and
// returns the failure it reported ("" for none) and how long it took.
func cornerFailure(t *testing.T, f func(tb testing.TB)) (string, time.Duration) {
	t.Helper()
	r := &cornerTB{TB: t}
	start := time.Now()
	msg := r.capture(func() { f(r) })
	return msg, time.Since(start)
}

var cornerUpgrader = gorilla.Upgrader{
	CheckOrigin:     func(*http.Request) bool { return true },
	ReadBufferSize:  256,
	WriteBufferSize: 256, // gorilla cuts longer messages into fragments
}

// cornerGorilla runs a gorilla/websocket server on loopback whose handler
// is given each connection; the handler returns when it is done with it.
func cornerGorilla(t *testing.T, handler func(c *gorilla.Conn)) *wstest.Server {
	return wstest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := cornerUpgrader.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("gorilla upgrade: %v", err)
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(cornerGuard))
		handler(c)
	}))
}

// The test client against a gorilla/websocket server on loopback: what it
// sends (masked frames, fragments cut inside a code point, a PING) reaches
// an independent server as RFC 6455 says, it reads gorilla's fragments and
// answers its PING on the way, and its Close is the closing handshake with
// 1000 as gorilla sees it.
func TestCornerClientAgainstGorilla(t *testing.T) {
	closed := make(chan error, 1)
	pongs := make(chan string, 4)
	long := strings.Repeat("añ€𝄞", 300) // 3000 bytes: gorilla fragments it
	srv := cornerGorilla(t, func(c *gorilla.Conn) {
		c.SetPongHandler(func(p string) error { pongs <- p; return nil })
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				closed <- err
				return
			}
			switch string(p) {
			case "long":
				err = c.WriteMessage(gorilla.TextMessage, []byte(long))
			case "ping me":
				err = c.WriteControl(gorilla.PingMessage, []byte("from gorilla"), time.Now().Add(cornerGuard))
				if err == nil {
					err = c.WriteMessage(gorilla.TextMessage, []byte("after the ping"))
				}
			default:
				err = c.WriteMessage(mt, p)
			}
			if err != nil {
				t.Errorf("gorilla write: %v", err)
			}
		}
	})
	c := srv.Dial(t, "/", nil)
	c.SendText("hello")
	c.ExpectText("hello")
	c.SendBinary([]byte{0, 1, 2, 0xff})
	c.ExpectBinary([]byte{0, 1, 2, 0xff})
	c.SendBinary(nil)
	c.ExpectBinary(nil)

	// Fragments, one cut inside "é", with a PING between them.
	c.SendFrame(frames.Frame{Op: frames.OpText, Payload: []byte("caf\xc3")})
	c.SendFrame(frames.Ping([]byte("mid")))
	c.SendFrame(frames.Continuation([]byte("\xa9"), false))
	c.SendFrame(frames.Continuation(nil, false))
	c.SendFrame(frames.Continuation([]byte("!"), true))
	c.ExpectPong([]byte("mid"))
	c.ExpectText("café!")

	c.SendText("long")
	c.ExpectText(long)

	c.SendText("ping me")
	c.ExpectText("after the ping") // answers gorilla's PING on the way
	c.SendText("sync")
	c.ExpectText("sync") // gorilla has read the PONG by now
	select {
	case p := <-pongs:
		if p != "from gorilla" {
			t.Errorf("gorilla got PONG %q, want %q", p, "from gorilla")
		}
	default:
		t.Errorf("gorilla got no PONG for its PING")
	}

	c.Close()
	err := <-closed
	var ce *gorilla.CloseError
	if !errors.As(err, &ce) || ce.Code != gorilla.CloseNormalClosure || ce.Text != "" {
		t.Errorf("gorilla saw %v, want a CLOSE 1000 with no reason", err)
	}
}

// Frames gorilla sends right after the 101, before the client reads
// anything, arrive with the handshake response and must not be lost.
func TestCornerClientReadsFramesSentWithThe101(t *testing.T) {
	srv := cornerGorilla(t, func(c *gorilla.Conn) {
		_ = c.WriteMessage(gorilla.TextMessage, []byte("first"))
		_ = c.WriteControl(gorilla.PingMessage, []byte("p"), time.Now().Add(cornerGuard))
		_ = c.WriteMessage(gorilla.BinaryMessage, []byte("second"))
		_, _, _ = c.ReadMessage()
	})
	for range 5 {
		c := srv.Dial(t, "/", nil)
		c.ExpectText("first")
		c.ExpectBinary([]byte("second"))
		c.Close()
	}
}

// ExpectClose answers a server's CLOSE with a CLOSE echoing its code
// (RFC 6455 §5.5.1): gorilla, which sent 4001, reads 4001 back; an empty
// CLOSE is answered with an empty one, which gorilla reads as 1005.
func TestCornerExpectCloseEchoesTheCodeToGorilla(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		code    frames.CloseCode
		reason  string
		echo    int
	}{
		{"4001 with a reason", gorilla.FormatCloseMessage(4001, "bye"), 4001, "bye", 4001},
		{"1000", gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""), frames.CloseNormal, "", gorilla.CloseNormalClosure},
		{"empty", nil, frames.CloseNoStatus, "", gorilla.CloseNoStatusReceived},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan error, 1)
			srv := cornerGorilla(t, func(c *gorilla.Conn) {
				if err := c.WriteControl(gorilla.CloseMessage, tc.payload, time.Now().Add(cornerGuard)); err != nil {
					t.Errorf("gorilla close: %v", err)
				}
				_, _, err := c.ReadMessage()
				got <- err
			})
			c := srv.Dial(t, "/", nil)
			c.ExpectClose(tc.code, tc.reason)
			err := <-got
			var ce *gorilla.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.echo {
				t.Errorf("gorilla read %v, want a CLOSE %d", err, tc.echo)
			}
		})
	}
}

// An independent server finds the client's unmasked SendHeader frame and
// its out-of-place continuation to be protocol errors, as RFC 6455 §5.1
// and §5.4 have it, and the client reads gorilla's CLOSE 1002.
func TestCornerGorillaRefusesWhatTheClientWasToldToBreak(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(c *wstest.Client)
	}{
		{"unmasked", func(c *wstest.Client) {
			c.SendHeader(frames.Header{Op: frames.OpText, Fin: true, Length: 2}, []byte("hi"))
		}},
		{"continuation out of place", func(c *wstest.Client) {
			c.SendFrame(frames.Continuation([]byte("x"), true))
		}},
		{"reserved opcode", func(c *wstest.Client) {
			c.SendFrame(frames.Frame{Op: 0x3, Fin: true})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan error, 1)
			srv := cornerGorilla(t, func(c *gorilla.Conn) {
				_, _, err := c.ReadMessage()
				got <- err
			})
			c := srv.Dial(t, "/", nil)
			tc.send(c)
			h, p := c.ReadFrame()
			code, _, err := frames.ParseClose(p)
			if h.Op != frames.OpClose || err != nil || code != frames.CloseProtocolError {
				t.Errorf("after %s: got %v % x, want a CLOSE 1002", tc.name, h.Op, p)
			}
			if err := <-got; err == nil {
				t.Errorf("gorilla accepted the frame")
			}
		})
	}
}

// The test client against a coder/websocket server on loopback: echo of
// text, binary and fragmented messages, a PING from either side, a CLOSE
// from coder read with ExpectClose, and a Close from the client that coder
// reads as 1000.
func TestCornerClientAgainstCoder(t *testing.T) {
	status := make(chan coder.StatusCode, 1)
	srv := wstest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := coder.Accept(w, r, &coder.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			t.Errorf("coder accept: %v", err)
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		ctx, cancel := context.WithTimeout(r.Context(), cornerGuard)
		defer cancel()
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				status <- coder.CloseStatus(err)
				return
			}
			switch string(p) {
			case "ping me":
				// coder's Ping waits for the PONG, which only a
				// concurrent Read can see.
				read := make(chan struct{})
				go func() {
					defer close(read)
					_, _, _ = c.Read(ctx)
				}()
				if err := c.Ping(ctx); err != nil {
					t.Errorf("coder ping: %v", err)
				}
				_ = c.Write(ctx, coder.MessageText, []byte("pong received"))
				<-read
				return
			case "close":
				_ = c.Close(4002, "coder says bye")
				status <- -1
				return
			case "pieces":
				wr, err := c.Writer(ctx, coder.MessageText)
				if err == nil {
					_, _ = wr.Write([]byte("a\xe2"))
					_, _ = wr.Write([]byte("\x82"))
					_, _ = wr.Write([]byte("\xac"))
					err = wr.Close()
				}
				if err != nil {
					t.Errorf("coder writer: %v", err)
				}
			default:
				_ = c.Write(ctx, typ, p)
			}
		}
	}))

	c := srv.Dial(t, "/", nil)
	c.SendText("hello")
	c.ExpectText("hello")
	c.SendFrame(frames.Frame{Op: frames.OpBinary, Payload: []byte{1}})
	c.SendFrame(frames.Continuation([]byte{2, 3}, true))
	c.ExpectBinary([]byte{1, 2, 3})
	c.SendFrame(frames.Ping([]byte("abc")))
	c.ExpectPong([]byte("abc"))
	c.SendText("pieces")
	c.ExpectText("a€")
	// Every length encoding both ways (RFC 6455 §5.2), coder writing
	// each message as one frame.
	for _, n := range []int{125, 126, 0xFFFF, 0x10000} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i * 13)
		}
		c.SendBinary(p)
		c.ExpectBinary(p)
	}
	c.Close()
	if s := <-status; s != coder.StatusNormalClosure {
		t.Errorf("coder saw status %v, want 1000", s)
	}

	c = srv.Dial(t, "/", nil)
	c.SendText("close")
	c.ExpectClose(4002, "coder says bye")
	<-status

	c = srv.Dial(t, "/", nil)
	c.SendText("ping me")
	c.ExpectText("pong received")
	c.CloseNow()
}

// Client.Timeout bounds every Expect method: with nothing coming, each
// fails after about Timeout with "nothing arrived within"; a server that
// sends PINGs (answered on the way) and PONGs without end does not keep
// an Expect waiting past Timeout either.
func TestCornerExpectMethodsTimeOut(t *testing.T) {
	const timeout = 150 * time.Millisecond
	silent := cornerGorilla(t, func(c *gorilla.Conn) {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	})
	chattySrv := cornerGorilla(t, func(c *gorilla.Conn) {
		go func() {
			for {
				if c.WriteControl(gorilla.PingMessage, []byte("p"), time.Now().Add(time.Second)) != nil {
					return
				}
				if c.WriteControl(gorilla.PongMessage, []byte("q"), time.Now().Add(time.Second)) != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	})
	expects := []struct {
		name string
		call func(c *wstest.Client)
		want string
	}{
		{"ExpectText", func(c *wstest.Client) { c.ExpectText("x") }, `want text "x"`},
		{"ExpectBinary", func(c *wstest.Client) { c.ExpectBinary([]byte{1}) }, `want binary [01]`},
		{"ExpectMessage", func(c *wstest.Client) { c.ExpectMessage() }, `want a message`},
		{"ExpectPong", func(c *wstest.Client) { c.ExpectPong([]byte("z")) }, `want pong "z"`},
		{"ExpectClose", func(c *wstest.Client) { c.ExpectClose(frames.CloseNormal, "") }, `want close 1000 normal closure ""`},
		{"ExpectPing", func(c *wstest.Client) { c.ExpectPing() }, `want ping`},
	}
	for _, chatty := range []bool{false, true} {
		for _, e := range expects {
			if chatty && (e.name == "ExpectPing" || e.name == "ExpectPong") {
				continue // they would get one
			}
			t.Run(fmt.Sprintf("%s chatty %v", e.name, chatty), func(t *testing.T) {
				msg, took := cornerFailure(t, func(tb testing.TB) {
					srv := silent
					if chatty {
						srv = chattySrv
					}
					c := srv.Dial(tb, "/", nil)
					c.Timeout = timeout
					e.call(c)
				})
				want := fmt.Sprintf("wstest: %s: nothing arrived within %v", e.want, timeout)
				if msg != want {
					t.Errorf("failure %q, want %q", msg, want)
				}
				if took < timeout || took > timeout+time.Second {
					t.Errorf("failed after %v, want about %v", took, timeout)
				}
			})
		}
	}
}

// cornerPinger runs a colibri echo Handler that reads until the peer goes,
// with keep-alive and an idle timeout on clk.
func cornerPinger(t *testing.T, cfg wsconn.Config) (*wstest.Server, *wstest.Clock) {
	clk := wstest.NewClock()
	cfg.Clock = clk
	return memEcho(t, cfg), clk
}

// docs/testing.md: "Cleanup and leak checks" — a loopback server whose
// handlers handed their connections to goroutines of their own (gorilla
// readers), plus a colibri handler, leaves no goroutine once Close
// returns and the transports are gone, with clients still connected.
func TestCornerLoopbackServerLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	started := make(chan struct{}, 4)
	mux := http.NewServeMux()
	mux.HandleFunc("/gorilla", func(w http.ResponseWriter, r *http.Request) {
		c, err := cornerUpgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			started <- struct{}{}
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	})
	echo := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		started <- struct{}{}
		for range in.Messages(0) {
		}
		return in.Err()
	}
	mux.Handle("/colibri", wstest.Handler(struct{}{}, echo, &wstest.HandlerOptions{Config: &wsconn.Config{Logger: quiet}}))
	srv := wstest.NewServer(t, mux)

	a := srv.Dial(t, "/gorilla", nil)
	b := srv.Dial(t, "/colibri", nil)
	d := gorilla.Dialer{HandshakeTimeout: cornerGuard}
	g, _, err := d.Dial(srv.URL()+"/colibri", nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case <-started:
		case <-time.After(cornerGuard):
			t.Fatal("a handler did not start")
		}
	}
	a.SendText("x")
	b.SendText("y")
	srv.Close()
	// The clients see the transport go.
	if _, _, err := g.ReadMessage(); err == nil {
		t.Errorf("gorilla client still reads after the server closed")
	}
	_ = g.Close()
	a.CloseNow()
	b.CloseNow()
}

// cornerClockAction is what a timer's function does to the clock when it
// fires: nothing, arm a new timer, or reset or stop an earlier one.
type cornerClockAction struct {
	kind   int // 0 nothing, 1 arm, 2 reset target, 3 stop target
	target int
	d      time.Duration
}

// cornerAction draws the action of timer id of program prog, the same for
// the clock and its model.
func cornerAction(prog, id int) cornerClockAction {
	r := rand.New(rand.NewPCG(uint64(prog), uint64(id)))
	a := cornerClockAction{kind: r.IntN(4), d: time.Duration(r.IntN(50)-3) * time.Second}
	if id == 0 && a.kind >= 2 {
		a.kind = 0
	}
	if id > 0 {
		a.target = r.IntN(id)
	}
	if r.IntN(3) > 0 && a.kind == 1 {
		a.kind = 0 // keep programs from growing too fast
	}
	return a
}

// cornerClockModel is Clock's documented behaviour written out.
type cornerClockModel struct {
	prog  int
	now   time.Duration
	seq   int
	due   []time.Duration
	order []int
	armed []bool
	log   []string
}

func (m *cornerClockModel) arm(d time.Duration) {
	m.seq++
	m.due = append(m.due, m.now+max(d, 0))
	m.order = append(m.order, m.seq)
	m.armed = append(m.armed, true)
}

func (m *cornerClockModel) reset(id int, d time.Duration) {
	m.log = append(m.log, fmt.Sprintf("reset %d: %v", id, m.armed[id]))
	m.seq++
	m.due[id], m.order[id], m.armed[id] = m.now+max(d, 0), m.seq, true
}

func (m *cornerClockModel) stop(id int) {
	m.log = append(m.log, fmt.Sprintf("stop %d: %v", id, m.armed[id]))
	m.armed[id] = false
}

func (m *cornerClockModel) act(a cornerClockAction) {
	switch a.kind {
	case 1:
		m.arm(a.d)
	case 2:
		m.reset(a.target, a.d)
	case 3:
		m.stop(a.target)
	}
}

func (m *cornerClockModel) advance(d time.Duration) {
	end := m.now + d
	for {
		next := -1
		for id := range m.due {
			if !m.armed[id] || m.due[id] > end {
				continue
			}
			if next < 0 || m.due[id] < m.due[next] || (m.due[id] == m.due[next] && m.order[id] < m.order[next]) {
				next = id
			}
		}
		if next < 0 {
			break
		}
		m.armed[next] = false
		m.now = max(m.now, m.due[next])
		m.log = append(m.log, fmt.Sprintf("fire %d at %v", next, m.now))
		m.act(cornerAction(m.prog, next))
	}
	m.now = max(m.now, end)
	m.log = append(m.log, fmt.Sprintf("advanced to %v", m.now))
}

// The fake Clock against a model of its documentation, on random programs
// from a fixed seed: timers armed (negative durations too), stopped and
// reset by the test and from inside other timers' functions, and Advance
// by random steps. Every timer due by the new time fires, in order of its
// due time, with Now reading its due time; one armed or reset by a firing
// timer fires within the same Advance when due by its end; Stop and Reset
// report whether the timer was armed; Timers counts the armed ones.
func TestCornerClockAgainstAModel(t *testing.T) {
	for prog := range 300 {
		r := rand.New(rand.NewPCG(uint64(prog), 1))
		clk := wstest.NewClock()
		start := clk.Now()
		m := &cornerClockModel{prog: prog}
		var log []string
		var timers []wsconn.Timer
		var armReal func(d time.Duration)
		var actReal func(a cornerClockAction)
		armReal = func(d time.Duration) {
			id := len(timers)
			timers = append(timers, nil)
			timers[id] = clk.AfterFunc(d, func() {
				log = append(log, fmt.Sprintf("fire %d at %v", id, clk.Now().Sub(start)))
				actReal(cornerAction(prog, id))
			})
		}
		actReal = func(a cornerClockAction) {
			switch a.kind {
			case 1:
				armReal(a.d)
			case 2:
				log = append(log, fmt.Sprintf("reset %d: %v", a.target, timers[a.target].Reset(a.d)))
			case 3:
				log = append(log, fmt.Sprintf("stop %d: %v", a.target, timers[a.target].Stop()))
			}
		}
		for range 25 {
			switch op := r.IntN(6); {
			case op <= 1 || len(timers) == 0:
				d := time.Duration(r.IntN(60)-5) * time.Second
				armReal(d)
				m.arm(d)
			case op == 2:
				a := cornerClockAction{kind: 2 + r.IntN(2), target: r.IntN(len(timers)), d: time.Duration(r.IntN(60)-3) * time.Second}
				actReal(a)
				m.act(a)
			default:
				d := time.Duration(r.IntN(40)) * time.Second
				clk.Advance(d)
				log = append(log, fmt.Sprintf("advanced to %v", clk.Now().Sub(start)))
				m.advance(d)
			}
			armed := 0
			for _, a := range m.armed {
				if a {
					armed++
				}
			}
			if clk.Timers() != armed {
				t.Fatalf("program %d: Timers() = %d, want %d", prog, clk.Timers(), armed)
			}
		}
		if strings.Join(log, "\n") != strings.Join(m.log, "\n") {
			for i := range max(len(log), len(m.log)) {
				var g, w string
				if i < len(log) {
					g = log[i]
				}
				if i < len(m.log) {
					w = m.log[i]
				}
				if g != w {
					t.Fatalf("program %d: step %d: clock %q, model %q", prog, i, g, w)
				}
			}
		}
	}
}

// docs/testing.md's keep-alive flow, timed: with a PingInterval of 40 s
// the PING comes neither before 0.75 of it (wsconn's documented
// precision) nor after all of it, and the pong timeout closes with 1001
// "ping timeout" neither before PongTimeout nor after it.
func TestCornerFakeClockPingTiming(t *testing.T) {
	srv, clk := cornerPinger(t, wsconn.Config{PingInterval: 40 * time.Second, PongTimeout: 20 * time.Second})
	rec := &cornerTB{TB: t}
	c := srv.Dial(rec, "/", nil)
	c.SendText("x")
	c.ExpectText("x")
	c.WaitServerReading()
	nothing := func(when string) {
		t.Helper()
		msg := rec.capture(func() {
			c.Timeout = 100 * time.Millisecond
			h, p := c.ReadFrame()
			rec.Errorf("got %v %q", h.Op, p)
		})
		c.Timeout = 0
		if msg != "wstest: read frame: nothing arrived within 100ms" {
			t.Fatalf("%s: %s", when, msg)
		}
	}
	clk.Advance(29 * time.Second)
	nothing("29 s after the last frame")
	c.WaitServerReading()
	clk.Advance(11 * time.Second)
	c.ExpectPing()
	c.WaitServerReading()
	clk.Advance(19 * time.Second)
	nothing("19 s after the PING")
	c.WaitServerReading()
	clk.Advance(time.Second)
	c.ExpectClose(frames.CloseGoingAway, "ping timeout")
}
