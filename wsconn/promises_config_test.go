package wsconn_test

// Tests of the defaults and limits that docs/configuration.md and
// docs/security.md promise for wsconn.Config, each through a loopback
// socket and a client that speaks raw frames. Long intervals run on the
// fake clock of package wstest.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// cfgpDeadline is a deadline colibri set on its transport, with the time
// it left when it was set (negative for the wake-up deadlines in the past,
// zero when cleared).
type cfgpDeadline struct {
	write bool
	left  time.Duration
}

// cfgpConn is the server's side of a loopback socket: it reports the
// deadlines colibri sets and can say when colibri has read a given number
// of bytes and asks for more.
type cfgpConn struct {
	net.Conn
	noted chan struct{} // a token after each deadline noted

	mu        sync.Mutex
	deadlines []cfgpDeadline
	read      int64
	want      int64
	reached   chan struct{}
}

func (c *cfgpConn) note(write bool, t time.Time) {
	d := cfgpDeadline{write: write}
	if !t.IsZero() {
		d.left = time.Until(t)
	}
	c.mu.Lock()
	c.deadlines = append(c.deadlines, d)
	c.mu.Unlock()
	select {
	case c.noted <- struct{}{}:
	default:
	}
}

// future returns the deadlines of the kind asked for that lay in the
// future when they were set, in order.
func (c *cfgpConn) future(write bool) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ds []time.Duration
	for _, d := range c.deadlines {
		if d.write == write && d.left > 0 {
			ds = append(ds, d.left)
		}
	}
	return ds
}

func (c *cfgpConn) SetDeadline(t time.Time) error {
	c.note(true, t)
	c.note(false, t)
	return c.Conn.SetDeadline(t)
}

func (c *cfgpConn) SetReadDeadline(t time.Time) error {
	c.note(false, t)
	return c.Conn.SetReadDeadline(t)
}

func (c *cfgpConn) SetWriteDeadline(t time.Time) error {
	c.note(true, t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *cfgpConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *cfgpConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.reached != nil && c.read >= c.want {
		close(c.reached)
		c.reached = nil
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read += int64(n)
	c.mu.Unlock()
	return n, err
}

// readAll returns a channel closed once colibri has read n bytes after the
// handshake and calls Read again.
func (c *cfgpConn) readAll(n int64) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	c.want, c.reached = n, ch
	return ch
}

// firstDeadline waits for the first deadline of the kind asked for that
// lies in the future.
func (c *cfgpConn) firstDeadline(t *testing.T, write bool) time.Duration {
	t.Helper()
	guard := time.After(5 * time.Second)
	for {
		if ds := c.future(write); len(ds) > 0 {
			return ds[0]
		}
		select {
		case <-c.noted:
		case <-guard:
			t.Fatalf("no deadline set (write %v)", write)
			return 0
		}
	}
}

// cfgpServe serves handler with cfg on a loopback port; each connection's
// transport is handed to the test on the returned channel. Connections are
// shut down at the end of the test.
func cfgpServe(t *testing.T, cfg *wsconn.Config, handler handlerFunc) (string, <-chan *cfgpConn) {
	t.Helper()
	conns := make(chan *cfgpConn, 8)
	url, _ := serveGroup(t, cfg, handler, nil, func(u *wsconn.Upgraded) {
		wc := &cfgpConn{Conn: u.Conn, noted: make(chan struct{}, 1)}
		u.Conn = wc
		conns <- wc
	})
	return url, conns
}

// cfgpConnOf returns the transport of the connection served next.
func cfgpConnOf(t *testing.T, conns <-chan *cfgpConn) *cfgpConn {
	t.Helper()
	return waitWithin(t, conns, 5*time.Second, "a connection to be served")
}

// cfgpMarked is echo plus a task that writes each text the test sends on
// mark: a frame from the server that comes after anything colibri decided
// to send before it (a PING, a CLOSE).
func cfgpMarked(mark <-chan string) handlerFunc {
	return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		_ = s.Go(func(ctx context.Context) error {
			for {
				select {
				case m := <-mark:
					if out.WriteText(ctx, m) != nil {
						return nil
					}
				case <-ctx.Done():
					return nil
				}
			}
		})
		return echo(ctx, in, out, s)
	}
}

// cfgpExpect reads the next frame and checks its opcode and payload.
func cfgpExpect(t *testing.T, c *rawClient, op frames.Opcode, payload string) []byte {
	t.Helper()
	h, p := c.read()
	if h.Op != op || (payload != "" && string(p) != payload) {
		t.Fatalf("got %v %q, want %v %q", h.Op, p, op, payload)
	}
	return p
}

// cfgpMark has the server write s and checks it is the next frame.
func cfgpMark(t *testing.T, c *rawClient, mark chan<- string, s string) {
	t.Helper()
	select {
	case mark <- s:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's writer task is gone")
	}
	cfgpExpect(t, c, frames.OpText, s)
}

// cfgpEchoed sends text and waits for its echo: the server has read
// everything sent before.
func cfgpEchoed(t *testing.T, c *rawClient, s string) {
	t.Helper()
	c.frame(frames.OpText, true, []byte(s))
	cfgpExpect(t, c, frames.OpText, s)
}

// configuration.md: PingInterval 30 s, the PING at most a quarter interval
// early; PongTimeout 20 s from the PING, then 1001 "ping timeout".
// Negative PingInterval: no PINGs at all.
func TestPromiseKeepAliveDefaults(t *testing.T) {
	if wsconn.DefaultPingInterval != 30*time.Second || wsconn.DefaultPongTimeout != 20*time.Second {
		t.Fatalf("defaults %v, %v; the docs say 30 s, 20 s", wsconn.DefaultPingInterval, wsconn.DefaultPongTimeout)
	}
	t.Run("zero config", func(t *testing.T) {
		clk := wstest.NewClock()
		mark := make(chan string)
		url, _ := cfgpServe(t, &wsconn.Config{Clock: clk, Logger: quietLogger}, cfgpMarked(mark))
		c := dialRaw(t, url)
		cfgpEchoed(t, c, "started") // the handler runs: the timer is armed

		clk.Advance(30*time.Second*3/4 - time.Millisecond)
		cfgpMark(t, c, mark, "no PING before 22.5 s")
		clk.Advance(30*time.Second/4 + time.Millisecond)
		cfgpExpect(t, c, frames.OpPing, "") // unanswered

		clk.Advance(20*time.Second - time.Millisecond)
		cfgpMark(t, c, mark, "no close before 20 s")
		clk.Advance(time.Millisecond)
		if reason := c.expectClose(frames.CloseGoingAway); reason != "ping timeout" {
			t.Fatalf("close reason %q, want \"ping timeout\"", reason)
		}
	})
	t.Run("negative PingInterval", func(t *testing.T) {
		clk := wstest.NewClock()
		mark := make(chan string)
		url, _ := cfgpServe(t, &wsconn.Config{Clock: clk, Logger: quietLogger, PingInterval: -1}, cfgpMarked(mark))
		c := dialRaw(t, url)
		cfgpEchoed(t, c, "started")
		clk.Advance(24 * time.Hour)
		cfgpMark(t, c, mark, "a day without a PING")
		c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
		c.expectClose(frames.CloseNormal)
	})
}

// configuration.md: IdleTimeout 0 (and negative) means none, keep-alive
// traffic alone keeps a connection open forever; when set, the close is
// 1001 "idle timeout", never before the timeout, at most a quarter late.
func TestPromiseIdleTimeout(t *testing.T) {
	for _, idle := range []time.Duration{0, -time.Second} {
		t.Run("none for "+idle.String(), func(t *testing.T) {
			clk := wstest.NewClock()
			mark := make(chan string)
			url, _ := cfgpServe(t, &wsconn.Config{Clock: clk, Logger: quietLogger, IdleTimeout: idle}, cfgpMarked(mark))
			c := dialRaw(t, url)
			cfgpEchoed(t, c, "started")
			// Ten minutes of control frames only: keep-alive PINGs
			// answered, and PINGs of the client's.
			for i := range 20 {
				clk.Advance(30 * time.Second)
				p := cfgpExpect(t, c, frames.OpPing, "")
				c.frame(frames.OpPong, true, p)
				n := strconv.Itoa(i)
				c.frame(frames.OpPing, true, []byte(n))
				cfgpExpect(t, c, frames.OpPong, n) // the server read our PONG
			}
			cfgpMark(t, c, mark, "open after ten idle minutes")
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			c.expectClose(frames.CloseNormal)
		})
	}
	t.Run("window", func(t *testing.T) {
		const idle = 40 * time.Second
		clk := wstest.NewClock()
		mark := make(chan string)
		url, _ := cfgpServe(t, &wsconn.Config{Clock: clk, Logger: quietLogger, PingInterval: -1, IdleTimeout: idle}, cfgpMarked(mark))
		c := dialRaw(t, url)
		cfgpEchoed(t, c, "the last data frame")
		clk.Advance(idle - time.Millisecond)
		cfgpMark(t, c, mark, "open just before the timeout")
		clk.Advance(idle/4 + time.Millisecond)
		if reason := c.expectClose(frames.CloseGoingAway); reason != "idle timeout" {
			t.Fatalf("close reason %q, want \"idle timeout\"", reason)
		}
	})
}

// cfgpSizes answers every message, frame or reader of the given loop with
// its size in bytes.
func cfgpSizes(loop string) handlerFunc {
	return func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		reply := func(n int64) error { return out.WriteText(ctx, strconv.FormatInt(n, 10)) }
		switch loop {
		case "Messages":
			for m := range in.Messages(0) {
				if err := reply(int64(len(m.Payload))); err != nil {
					return err
				}
			}
		case "Frames":
			for f := range in.Frames() {
				if err := reply(int64(len(f.Payload))); err != nil {
					return err
				}
			}
		case "Readers":
			for _, r := range in.Readers() {
				n, err := io.Copy(io.Discard, r)
				if err != nil {
					return err
				}
				if err := reply(n); err != nil {
					return err
				}
			}
		}
		return in.Err()
	}
}

// cfgpAnnounce sends only the header of a masked frame announcing n bytes.
func cfgpAnnounce(c *rawClient, op frames.Opcode, fin bool, n int64) {
	c.t.Helper()
	h := frames.Header{Op: op, Fin: fin, Masked: true, Length: n}
	_, _ = rand.Read(h.Mask[:])
	var hb [frames.MaxHeaderSize]byte
	c.write(hb[:frames.PutHeader(hb[:], h)])
}

func cfgpSize(t *testing.T, c *rawClient, n int) {
	t.Helper()
	cfgpExpect(t, c, frames.OpText, strconv.Itoa(n))
}

// configuration.md and security.md: MaxMessageSize defaults to 1 MiB (also
// for negative values), for Messages(0) and, with no MaxFrameSize, for the
// frames of a Frames loop; beyond it, 1009 before the excess is read.
func TestPromiseMaxMessageSizeDefault(t *testing.T) {
	const mib = 1 << 20
	if wsconn.DefaultMaxMessageSize != mib {
		t.Fatalf("DefaultMaxMessageSize %d, the docs say 1 MiB", wsconn.DefaultMaxMessageSize)
	}
	for _, size := range []int64{0, -1} {
		cfg := &wsconn.Config{MaxMessageSize: size, Logger: quietLogger}
		t.Run("Messages/"+strconv.FormatInt(size, 10), func(t *testing.T) {
			url, _ := cfgpServe(t, cfg, cfgpSizes("Messages"))
			c := dialRaw(t, url)
			c.frame(frames.OpBinary, true, make([]byte, mib))
			cfgpSize(t, c, mib)
			c.frame(frames.OpBinary, false, make([]byte, mib/2))
			c.frame(frames.OpContinuation, false, make([]byte, mib/2-10))
			c.frame(frames.OpContinuation, true, make([]byte, 10))
			cfgpSize(t, c, mib)
			// One byte over, announced and not sent.
			cfgpAnnounce(c, frames.OpBinary, true, mib+1)
			c.expectClose(frames.CloseMessageTooBig)

			c = dialRaw(t, url)
			c.frame(frames.OpText, false, bytes.Repeat([]byte("a"), mib-10))
			cfgpAnnounce(c, frames.OpContinuation, true, 11)
			c.expectClose(frames.CloseMessageTooBig)
		})
		t.Run("Frames/"+strconv.FormatInt(size, 10), func(t *testing.T) {
			url, _ := cfgpServe(t, cfg, cfgpSizes("Frames"))
			c := dialRaw(t, url)
			c.frame(frames.OpBinary, true, make([]byte, mib))
			cfgpSize(t, c, mib)
			cfgpAnnounce(c, frames.OpBinary, true, mib+1)
			c.expectClose(frames.CloseMessageTooBig)
		})
	}
}

// configuration.md and security.md: MaxFrameSize 0 (and negative) means
// none, so a Readers loop takes a frame of any size; when set, every
// iterator refuses a larger frame with 1009 before its payload is read,
// while Messages still assembles larger messages from smaller frames.
func TestPromiseMaxFrameSize(t *testing.T) {
	for _, size := range []int64{0, -1} {
		t.Run("none for "+strconv.FormatInt(size, 10), func(t *testing.T) {
			url, _ := cfgpServe(t, &wsconn.Config{MaxFrameSize: size, Logger: quietLogger}, cfgpSizes("Readers"))
			c := dialRaw(t, url)
			c.frame(frames.OpBinary, true, make([]byte, 3<<20))
			cfgpSize(t, c, 3<<20)
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			c.expectClose(frames.CloseNormal)
		})
	}
	for _, loop := range []string{"Messages", "Frames", "Readers"} {
		t.Run("1000/"+loop, func(t *testing.T) {
			url, _ := cfgpServe(t, &wsconn.Config{MaxFrameSize: 1000, Logger: quietLogger}, cfgpSizes(loop))
			c := dialRaw(t, url)
			c.frame(frames.OpBinary, true, make([]byte, 1000))
			cfgpSize(t, c, 1000)
			if loop == "Messages" {
				c.frame(frames.OpBinary, false, make([]byte, 1000))
				c.frame(frames.OpContinuation, false, make([]byte, 1000))
				c.frame(frames.OpContinuation, true, make([]byte, 1000))
				cfgpSize(t, c, 3000)
			}
			cfgpAnnounce(c, frames.OpBinary, true, 1001)
			c.expectClose(frames.CloseMessageTooBig)
		})
	}
}

// configuration.md: FragmentSize defaults to 64 KiB (also for negative
// values): longer messages, written whole or through a Writer, go out in
// frames of at most 64 KiB.
func TestPromiseFragmentSizeDefault(t *testing.T) {
	const kib = 1 << 10
	if wsconn.DefaultFragmentSize != 64*kib {
		t.Fatalf("DefaultFragmentSize %d, the docs say 64 KiB", wsconn.DefaultFragmentSize)
	}
	send := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
			if err := out.WriteBinary(ctx, make([]byte, 150*kib)); err != nil {
				return err
			}
			w, err := out.Writer(ctx, messages.KindBinary)
			if err != nil {
				return err
			}
			for range 15 {
				if _, err := w.Write(make([]byte, 10*kib)); err != nil {
					return err
				}
			}
			if err := w.Close(); err != nil {
				return err
			}
			if err := out.WriteText(ctx, strings.Repeat("x", 64*kib)); err != nil {
				return err
			}
		}
		return in.Err()
	}
	for _, size := range []int{0, -1} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			url, _ := cfgpServe(t, &wsconn.Config{FragmentSize: size, Logger: quietLogger}, send)
			c := dialRaw(t, url)
			c.frame(frames.OpText, true, []byte("go"))
			var got []string
			for range 7 {
				h, p := c.read()
				got = append(got, strconv.Itoa(len(p))+"/"+strconv.FormatBool(h.Fin))
			}
			want := "65536/false 65536/false 22528/true 65536/false 65536/false 22528/true 65536/true"
			if strings.Join(got, " ") != want {
				t.Fatalf("frames (payload/fin) %v, want %s", got, want)
			}
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			c.expectClose(frames.CloseNormal)
		})
	}
}

// configuration.md: WriteTimeout 10 s bounds each write (negative: none);
// CloseTimeout 5 s (also for zero and negative) bounds the wait for the
// peer's CLOSE and the lingering close after a violation. Both are socket
// deadlines: the test reads them off the server's transport.
func TestPromiseWriteAndCloseTimeoutDefaults(t *testing.T) {
	if wsconn.DefaultWriteTimeout != 10*time.Second || wsconn.DefaultCloseTimeout != 5*time.Second {
		t.Fatalf("defaults %v, %v; the docs say 10 s, 5 s", wsconn.DefaultWriteTimeout, wsconn.DefaultCloseTimeout)
	}
	near := func(got, want time.Duration) bool { return got <= want && got > want-time.Second }
	once := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			return out.WriteMessage(ctx, m) // then close with 1000
		}
		return in.Err()
	}
	for _, tc := range []struct {
		name  string
		cfg   wsconn.Config
		write time.Duration // 0: no write deadline
	}{
		{"zero", wsconn.Config{}, 10 * time.Second},
		{"negative", wsconn.Config{WriteTimeout: -1, CloseTimeout: -1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Logger = quietLogger
			url, conns := cfgpServe(t, &cfg, once)
			c := dialRaw(t, url)
			sc := cfgpConnOf(t, conns)
			cfgpEchoed(t, c, "hello")
			c.expectClose(frames.CloseNormal)
			// Once its CLOSE is out, the server waits CloseTimeout.
			if d := sc.firstDeadline(t, false); !near(d, 5*time.Second) {
				t.Errorf("waiting for the peer's CLOSE with %v, want 5s", d)
			}
			// Every write (the echo, the CLOSE) is over by now.
			writes := sc.future(true)
			switch {
			case tc.write == 0 && len(writes) > 0:
				t.Errorf("write deadlines %v with WriteTimeout -1, want none", writes)
			case tc.write > 0 && (len(writes) == 0 || !near(writes[0], tc.write)):
				t.Errorf("write deadlines %v, want the first at %v", writes, tc.write)
			}
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			c.expectEOF()
		})
	}
	t.Run("lingering close after a violation", func(t *testing.T) {
		url, conns := cfgpServe(t, &wsconn.Config{Logger: quietLogger}, echo)
		c := dialRaw(t, url)
		sc := cfgpConnOf(t, conns)
		c.write([]byte{0x82, 0x01, 'x'}) // unmasked
		c.expectClose(frames.CloseProtocolError)
		if d := sc.firstDeadline(t, false); !near(d, 5*time.Second) {
			t.Errorf("lingering close reads for %v, want 5s", d)
		}
	})
}

// cfgpLogs is a concurrency-safe log buffer.
type cfgpLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *cfgpLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *cfgpLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// configuration.md: without a Logger (and without an application's), a
// connection logs to slog.Default(), its handler's failure included, with
// the connection's id and remote address.
func TestPromiseLoggerDefaultIsSlogDefault(t *testing.T) {
	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })
	var logs cfgpLogs
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))

	url, _ := cfgpServe(t, &wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return errors.New("cfgp boom")
	})
	c := dialRaw(t, url)
	c.expectClose(frames.CloseInternalError)
	got := logs.String()
	for _, want := range []string{"handler failed", "cfgp boom", "conn=", "remote=127.0.0.1:"} {
		if !strings.Contains(got, want) {
			t.Errorf("slog.Default() got %q, want it to contain %q", got, want)
		}
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
}

// security.md, Limits: a message buffer "grows only when full, at most
// doubling ...: never more than about twice the bytes that arrived, plus
// 16 KiB". A frame announcing 1 TiB (under a 1 TiB limit) of which 4 MiB
// and a byte arrived must then hold at most about 8 MiB + 16 KiB of
// buffer, not anything near what it announced.
func TestPromiseMessageBufferAtMostDoublesWhatArrived(t *testing.T) {
	const arrived = 4<<20 + 1
	url, conns := cfgpServe(t, &wsconn.Config{MaxMessageSize: 1 << 40, Logger: quietLogger}, echo)
	c := dialRaw(t, url)
	sc := cfgpConnOf(t, conns)

	h := frames.Header{Op: frames.OpBinary, Fin: true, Masked: true, Length: 1 << 40}
	var hb [frames.MaxHeaderSize]byte
	n := frames.PutHeader(hb[:], h) // mask key zero: the payload stays zeros
	wire := append(hb[:n:n], make([]byte, arrived)...)
	done := sc.readAll(int64(len(wire)))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC() // pooled buffers survive one collection
	runtime.ReadMemStats(&before)
	c.write(wire)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not read what was sent")
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(wire)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if limit := int64(2*arrived + 16<<10 + 1<<20); grew > limit {
		t.Errorf("%d bytes of a frame arrived and the heap grew by %d (%.1f MiB); the docs promise a buffer of at most about twice what arrived",
			arrived, grew, float64(grew)/(1<<20))
	}
}
