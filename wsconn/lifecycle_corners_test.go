package wsconn_test

// Corners of the connection lifecycle: the handler's return racing with
// the other ways a connection ends, what the peer receives, what loops,
// contexts and writes report, and that nothing outlives the connection.
// Every test goes through a loopback socket with a client colibri did not
// write (raw frames or gorilla/websocket).

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// lcNoLeak fails the test if a goroutine started since base was taken is
// still running (goleak retries for a while before it gives up).
func lcNoLeak(t *testing.T, base goleak.Option) {
	t.Helper()
	if err := goleak.Find(base); err != nil {
		t.Errorf("a goroutine outlived its connection: %v", err)
	}
}

// lcExpectOpen checks that the server keeps the TCP connection open and
// sends nothing for d.
func (c *rawClient) lcExpectOpen(d time.Duration) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := c.br.Read(b[:])
	if ne, ok := errors.AsType[net.Error](err); n == 0 && ok && ne.Timeout() {
		return
	}
	c.t.Fatalf("the server did not wait for the peer's CLOSE: read %d bytes, %v", n, err)
}

// TestLifecycleTaskLoopKeepsTheClosingHandshake: once the handler has
// returned, colibri waits for the peer's CLOSE for up to CloseTimeout
// before it closes TCP (closing.md, "The closing handshake and TCP"). A
// sibling task that takes the reading side meanwhile (its busy loop body
// returns, or it starts a loop, which returns at once) must not cut that
// wait short.
func TestLifecycleTaskLoopKeepsTheClosingHandshake(t *testing.T) {
	for _, how := range []string{"busy body returns", "loop starts"} {
		t.Run(how, func(t *testing.T) {
			release := make(chan struct{})
			t.Cleanup(func() {
				select {
				case <-release:
				default:
					close(release)
				}
			})
			url, _ := testServer(t, &wsconn.Config{CloseTimeout: 2 * time.Second}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				got := make(chan struct{})
				_ = s.Go(func(ctx context.Context) error {
					if how == "loop starts" {
						close(got)
						<-release
						for range in.Messages(0) {
							t.Error("a loop started after the handler returned yielded")
						}
						return nil
					}
					for range in.Messages(0) {
						close(got)
						<-release // busy while the handler returns
					}
					return nil
				})
				<-got
				return nil
			})
			c := dialRaw(t, url)
			c.frame(frames.OpText, true, []byte("work"))
			c.expectClose(frames.CloseNormal)
			// The closing handshake now reads for the peer's CLOSE; the
			// CLOSE left just before it began.
			time.Sleep(50 * time.Millisecond)
			close(release)
			c.lcExpectOpen(300 * time.Millisecond)
			c.answerClose(frames.CloseNormal)
			c.expectSilentEOF()
		})
	}
}

// TestLifecycleTaskPassingOnASiblingsFailureIsNotLoggedAgain: a task's
// failure or panic closes with 1011 and is logged once (handlers.md,
// "Concurrency"; architecture.md: "a panic ... is logged once"). A second
// task that passes on why its context ended, as loops teach (return
// in.Err()), must not log the same failure a second time.
func TestLifecycleTaskPassingOnASiblingsFailureIsNotLoggedAgain(t *testing.T) {
	tests := []struct {
		name, line string
		fail       func() error
	}{
		{"failed", `msg="connection task failed"`, func() error { return errors.New("feed failed") }},
		{"panicked", `msg="connection task panicked"`, func() error { panic("feed exploded") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs testlog.Buffer
			cfg := &wsconn.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			passed := make(chan error, 1)
			url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				_ = s.Go(func(ctx context.Context) error {
					for range in.Messages(0) {
					}
					passed <- in.Err()
					return in.Err()
				})
				_ = s.Go(func(context.Context) error { return tt.fail() })
				<-ctx.Done()
				return nil
			})
			c := dialRaw(t, url)
			if reason := c.expectClose(frames.CloseInternalError); reason != "internal error" {
				t.Errorf("reason %q", reason)
			}
			c.answerClose(frames.CloseInternalError)
			c.expectSilentEOF()
			if err := waitFor(t, passed, "the reading task"); err == nil {
				t.Fatal("the reading task's loop ended with a nil error after its sibling failed")
			}
			if out := logs.String(); strings.Count(out, "msg=") != 1 || !strings.Contains(out, tt.line) {
				t.Errorf("want the failure logged once (%s); log:\n%s", tt.line, out)
			}
		})
	}
}

// TestLifecycleNestedLoopThenBreakReportsNil: in.Err says why the last
// loop to end ended, and a loop the body broke out of ended with nil
// (handlers.md, "Err after the loop"). A second loop tried inside the
// first one's body ends first, with ErrBusyReading; the outer loop, which
// ends last by a break, must then report nil.
func TestLifecycleNestedLoopThenBreakReportsNil(t *testing.T) {
	type result struct{ inner, outer error }
	results := make(chan result, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var r result
		for range in.Messages(0) {
			for range in.Frames() {
			}
			r.inner = in.Err()
			break
		}
		r.outer = in.Err()
		results <- r
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("one"))
	c.expectClose(frames.CloseNormal)
	c.answerClose(frames.CloseNormal)
	c.expectSilentEOF()
	r := waitFor(t, results, "the handler")
	if !errors.Is(r.inner, wsconn.ErrBusyReading) {
		t.Errorf("nested loop: in.Err() = %v, want ErrBusyReading", r.inner)
	}
	if r.outer != nil {
		t.Errorf("after breaking out of the outer loop, which ended last: in.Err() = %v, want nil", r.outer)
	}
}

// TestLifecycleRecoveredPanicInReadersBodyThenReadOn: a panic in a
// Readers loop body that the handler recovers leaves the connection
// usable: the next loop goes on with the next message, and the part of
// the message the body left unread is discarded, as after a body that
// returns (handlers.md, "Borrowed payloads"), not taken for a protocol
// violation.
func TestLifecycleRecoveredPanicInReadersBodyThenReadOn(t *testing.T) {
	type result struct {
		got []string
		err error
	}
	results := make(chan result, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var r result
		func() {
			defer func() { _ = recover() }()
			for _, rd := range in.Readers() {
				b := make([]byte, 2)
				_, _ = io.ReadFull(rd, b)
				r.got = append(r.got, string(b))
				panic("body failed")
			}
		}()
		for m := range in.Messages(0) {
			r.got = append(r.got, m.Text())
		}
		r.err = in.Err()
		results <- r
		return r.err
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("hello"))
	c.frame(frames.OpContinuation, true, []byte(" world"))
	c.frame(frames.OpText, true, []byte("next"))
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	r := waitFor(t, results, "the handler")
	if strings.Join(r.got, "|") != "he|next" || r.err != nil {
		t.Fatalf("got %q, in.Err() = %v; want [he next] and nil", r.got, r.err)
	}
	c.expectClose(frames.CloseNormal)
	c.expectSilentEOF()
}

// TestLifecycleHandlerReturnWithTasksMidWrite: the handler returns nil
// while one task holds an open Writer, another waits for the message lock
// with a context of its own, and a third waits on its context. The peer
// gets the accepted message and the Writer's fragment, then 1000 at once;
// the abandoned Writer's later write and the waiting write fail with ErrClosed carrying 1000, the tasks' context's
// cause carries 1000, and no goroutine is left once the connection ends.
func TestLifecycleHandlerReturnWithTasksMidWrite(t *testing.T) {
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 4)
	ready := make(chan struct{}, 2)
	sawClose := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-sawClose:
		default:
			close(sawClose)
		}
	})
	url, _ := testServer(t, &wsconn.Config{FragmentSize: 8}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		if err := out.WriteText(ctx, "accepted"); err != nil {
			return err
		}
		opened := make(chan struct{})
		_ = s.Go(func(ctx context.Context) error {
			w, err := out.Writer(context.Background(), messages.KindText)
			if err != nil {
				return err
			}
			_, _ = w.Write([]byte("01234567")) // one fragment out
			close(opened)
			<-sawClose // the handler returned, and the CLOSE is out
			_, err = w.Write([]byte("89abcdef"))
			results <- result{"writer", err}
			_ = w.Close()
			return nil
		})
		<-opened
		_ = s.Go(func(ctx context.Context) error {
			ready <- struct{}{}
			results <- result{"waiting write", out.WriteText(context.Background(), "never")}
			return nil
		})
		_ = s.Go(func(ctx context.Context) error {
			ready <- struct{}{}
			<-ctx.Done()
			results <- result{"cause", context.Cause(ctx)}
			return nil
		})
		<-ready
		<-ready
		time.Sleep(20 * time.Millisecond) // the waiting write is parked on the message lock
		return nil
	})
	base := goleak.IgnoreCurrent() // the server's goroutines, before the connection
	c := dialRaw(t, url)
	if h, p := c.read(); h.Op != frames.OpText || !h.Fin || string(p) != "accepted" {
		t.Fatalf("got %v %q, want the accepted message", h.Op, p)
	}
	if h, p := c.read(); h.Op != frames.OpText || h.Fin || string(p) != "01234567" {
		t.Fatalf("got %v fin=%v %q, want the Writer's first fragment", h.Op, h.Fin, p)
	}
	if h, p := c.read(); h.Op != frames.OpClose || string(p) != string(closePayload(frames.CloseNormal, "")) {
		t.Fatalf("got %v %q, want CLOSE 1000 right after the abandoned fragment", h.Op, p)
	}
	close(sawClose)
	c.answerClose(frames.CloseNormal)
	c.expectSilentEOF()
	for range 3 {
		r := waitFor(t, results, "the tasks")
		if wsconn.CloseStatus(r.err) != frames.CloseNormal || (r.name != "cause" && !errors.Is(r.err, wsconn.ErrClosed)) {
			t.Errorf("%s: %v, want ErrClosed carrying 1000", r.name, r.err)
		}
	}
	lcNoLeak(t, base)
}

// TestLifecycleContextCauseAfterOutCloseCarriesItsCode: after out.Close
// the code is fixed (handlers.md: once ctx is done "the close code is
// fixed"; architecture.md: the first cause fixes the code "and the cause
// that refused writes wrap; the handler's context is cancelled with it").
// When the handler then returns nil, a task's context.Cause must carry the
// code that went out, as the writes' error does, not the 1000 a nil
// return would have sent.
func TestLifecycleContextCauseAfterOutCloseCarriesItsCode(t *testing.T) {
	type result struct{ cause, write error }
	results := make(chan result, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		_ = s.Go(func(ctx context.Context) error {
			<-ctx.Done()
			results <- result{context.Cause(ctx), out.WriteText(context.Background(), "late")}
			return nil
		})
		if err := out.Close(4000, "bye"); err != nil {
			return err
		}
		return nil
	})
	c := dialRaw(t, url)
	if reason := c.expectClose(4000); reason != "bye" {
		t.Errorf("reason %q", reason)
	}
	c.answerClose(4000)
	c.expectSilentEOF()
	r := waitFor(t, results, "the task")
	if !errors.Is(r.write, wsconn.ErrClosed) || wsconn.CloseStatus(r.write) != 4000 {
		t.Errorf("write: %v, want ErrClosed carrying 4000", r.write)
	}
	if got := wsconn.CloseStatus(r.cause); got != 4000 {
		t.Errorf("context.Cause(ctx) = %v (code %v), but the code that went out is 4000", r.cause, got)
	}
}

// TestLifecyclePanicInATasksLoopBody: a task that panics in the body of
// any of the three loops closes with 1011; the loop gives the reading
// side back, so the handler's own loop, started after its context ended,
// is not told ErrBusyReading but returns at once with the task's failure
// (closing.md, "What Inbound.Err returns"); nothing outlives the
// connection. The body runs long enough for the background reader to
// take over, and the peer's PING meanwhile is answered.
func TestLifecyclePanicInATasksLoopBody(t *testing.T) {
	for _, loop := range []string{"Messages", "Frames", "Readers"} {
		t.Run(loop, func(t *testing.T) {
			type result struct {
				yielded int
				err     error
			}
			results := make(chan result, 1)
			inBody := make(chan struct{})
			pong := make(chan struct{})
			url, _ := testServer(t, &wsconn.Config{CloseTimeout: 500 * time.Millisecond}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				_ = s.Go(func(ctx context.Context) error {
					body := func() {
						close(inBody)
						<-pong
						panic("body exploded")
					}
					switch loop {
					case "Messages":
						for range in.Messages(0) {
							body()
						}
					case "Frames":
						for range in.Frames() {
							body()
						}
					case "Readers":
						for range in.Readers() {
							body()
						}
					}
					return nil
				})
				<-ctx.Done()
				var r result
				for range in.Messages(0) {
					r.yielded++
				}
				r.err = in.Err()
				results <- r
				return r.err
			})
			base := goleak.IgnoreCurrent()
			c := dialRaw(t, url)
			c.frame(frames.OpText, true, []byte("boom"))
			<-inBody
			c.frame(frames.OpPing, true, []byte("alive?"))
			if h, p := c.read(); h.Op != frames.OpPong || string(p) != "alive?" {
				t.Fatalf("got %v %q while the body was busy, want the PONG", h.Op, p)
			}
			close(pong)
			if reason := c.expectClose(frames.CloseInternalError); reason != "internal error" {
				t.Errorf("reason %q", reason)
			}
			c.answerClose(frames.CloseInternalError)
			c.expectSilentEOF()
			r := waitFor(t, results, "the handler")
			// The loop reports why the inbound side ended: the task's
			// panic, or, when the peer's answering CLOSE came first, that
			// CLOSE (closing.md, "What Inbound.Err returns").
			if r.yielded != 0 || r.err == nil || errors.Is(r.err, wsconn.ErrBusyReading) ||
				!strings.Contains(r.err.Error(), "body exploded") && wsconn.CloseStatus(r.err) != frames.CloseInternalError {
				t.Errorf("handler's loop after the panic: yielded %d, in.Err() = %v; want nothing and the task's panic or the peer's 1011", r.yielded, r.err)
			}
			lcNoLeak(t, base)
		})
	}
}

// TestLifecycleTaskPanicsHoldingAWriter: a task that panics while its
// Writer is open closes the connection with 1011 (handlers.md) once the
// handler, whose loop ends with the task's failure, returns: the
// fragment already written comes first, and the CLOSE is not held back
// for good by the dead Writer.
func TestLifecycleTaskPanicsHoldingAWriter(t *testing.T) {
	inErr := make(chan error, 1)
	url, _ := testServer(t, &wsconn.Config{FragmentSize: 4, CloseTimeout: 500 * time.Millisecond}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if m.Text() != "go" {
				continue
			}
			_ = s.Go(func(ctx context.Context) error {
				w, err := out.Writer(ctx, messages.KindText)
				if err != nil {
					return err
				}
				_, _ = w.Write([]byte("part"))
				panic("writer task exploded")
			})
		}
		inErr <- in.Err()
		return in.Err()
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("go"))
	if h, p := c.read(); h.Op != frames.OpText || h.Fin || string(p) != "part" {
		t.Fatalf("got %v fin=%v %q, want the Writer's first fragment", h.Op, h.Fin, p)
	}
	if reason := c.expectClose(frames.CloseInternalError); reason != "internal error" {
		t.Errorf("reason %q", reason)
	}
	c.answerClose(frames.CloseInternalError)
	c.expectSilentEOF()
	if err := waitFor(t, inErr, "the handler"); err == nil || !strings.Contains(err.Error(), "writer task exploded") {
		t.Errorf("in.Err() = %v, want the task's panic", err)
	}
}

// TestLifecycleReaderKeptIntoTheNextBody: a reader from Readers is
// valid only in its loop body; used after that body returned it fails
// with ErrClosed (closing.md, "Sentinel errors"). Kept into the next
// body, it must not read the next message.
func TestLifecycleReaderKeptIntoTheNextBody(t *testing.T) {
	type result struct {
		late string
		err  error
	}
	results := make(chan result, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var kept io.Reader
		for _, rd := range in.Readers() {
			if kept == nil {
				kept = rd
				continue
			}
			b, err := io.ReadAll(kept)
			results <- result{string(b), err}
			break
		}
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("first"))
	c.frame(frames.OpText, true, []byte("second"))
	r := waitFor(t, results, "the handler")
	c.expectClose(frames.CloseNormal)
	if r.late != "" || !errors.Is(r.err, wsconn.ErrClosed) {
		t.Fatalf("the first message's reader, used in the second body, read %q, %v; want nothing and ErrClosed", r.late, r.err)
	}
}

// TestLifecycleHandlerReturnsWhileATaskWriteTimesOut: the handler
// returns while a task's message is stuck on a peer that stopped
// reading. The CLOSE waits for that message; the write then fails after
// WriteTimeout with an error matching ErrClosed and ErrWriteTimeout, no
// CLOSE can follow on the broken stream (closing.md), and the connection
// ends by itself, though CloseTimeout is long, leaving no goroutine
// behind.
func TestLifecycleHandlerReturnsWhileATaskWriteTimesOut(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	werr := make(chan error, 1)
	underWay := make(chan struct{})
	url, _ := testServer(t, &wsconn.Config{WriteTimeout: writeTimeout, PingInterval: -1, CloseTimeout: 5 * time.Second}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		_ = s.Go(func(ctx context.Context) error {
			err := out.WriteBinary(context.Background(), make([]byte, 32<<20))
			werr <- err
			return err
		})
		<-underWay // the peer has seen the message begin: the write holds the writer
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	base := goleak.IgnoreCurrent()
	c := dialRaw(t, url)
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	var head [2]byte
	if _, err := io.ReadFull(c.br, head[:]); err != nil {
		t.Fatal(err)
	}
	close(underWay)
	start := time.Now()
	err := waitFor(t, werr, "the stuck write")
	if d := time.Since(start); d > 3*writeTimeout {
		t.Errorf("the write failed after %v, want about WriteTimeout (%v)", d, writeTimeout)
	}
	if !errors.Is(err, wsconn.ErrClosed) || !errors.Is(err, wsconn.ErrWriteTimeout) {
		t.Errorf("stuck write: %v, want ErrClosed and ErrWriteTimeout", err)
	}
	lcNoLeak(t, base)
}

// TestLifecycleShutdownWaitsForTheOpenWriter: a shutdown begins closing
// with 1001 "server shutting down" after the message being written
// (closing.md, "Shutdown"): the handler's open Writer finishes its
// message, which reaches the peer whole before the 1001; a new message
// is then refused with ErrClosed and ErrShutdown; the shutdown reports
// the connection graceful once the peer answers.
func TestLifecycleShutdownWaitsForTheOpenWriter(t *testing.T) {
	type result struct{ writer, after error }
	results := make(chan result, 1)
	opened := make(chan struct{})
	url, g := testServer(t, &wsconn.Config{FragmentSize: 4}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		w, err := out.Writer(ctx, messages.KindText)
		if err != nil {
			return err
		}
		_, _ = w.Write([]byte("head"))
		close(opened)
		<-ctx.Done() // the shutdown
		var r result
		_, r.writer = w.Write([]byte("tail"))
		r.writer = errors.Join(r.writer, w.Close())
		r.after = out.WriteText(context.Background(), "refused")
		results <- r
		return context.Cause(ctx)
	})
	c := dialRaw(t, url)
	<-opened
	reports := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rep, err := g.Shutdown(ctx)
		if err == nil && (rep.Graceful != 1 || rep.Forced != 0) {
			err = errors.New("not graceful")
		}
		reports <- err
	}()
	var msg []byte
	for {
		h, p := c.read()
		if h.Op == frames.OpClose {
			code, reason, _ := frames.ParseClose(p)
			if code != frames.CloseGoingAway || reason != "server shutting down" {
				t.Fatalf("CLOSE %v %q, want 1001 server shutting down", code, reason)
			}
			break
		}
		msg = append(msg, p...)
		if h.Fin {
			break
		}
	}
	if string(msg) != "headtail" {
		t.Fatalf("got %q before the CLOSE, want the whole message headtail", msg)
	}
	c.expectClose(frames.CloseGoingAway)
	c.answerClose(frames.CloseGoingAway)
	c.expectSilentEOF()
	r := waitFor(t, results, "the handler")
	if r.writer != nil {
		t.Errorf("the open Writer's message: %v", r.writer)
	}
	if !errors.Is(r.after, wsconn.ErrClosed) || !errors.Is(r.after, wsconn.ErrShutdown) {
		t.Errorf("write after the shutdown: %v, want ErrClosed and ErrShutdown", r.after)
	}
	if err := waitFor(t, reports, "the shutdown"); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestLifecycleIdleTimeoutSparesAPeerHeldBackByReadAhead: IdleTimeout
// closes a peer that sends no data frame for that long. A peer that
// keeps sending while a slow loop body has let ReadAhead fill is not
// idle: colibri merely stopped reading (the pong timeout is held back in
// that case for the same reason, closing.md).
func TestLifecycleIdleTimeoutSparesAPeerHeldBackByReadAhead(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	count := make(chan int, 1)
	url, _ := testServer(t, &wsconn.Config{IdleTimeout: 200 * time.Millisecond, CloseTimeout: 300 * time.Millisecond}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		n := 0
		for range in.Messages(0) {
			if n++; n == 1 {
				<-release // a slow body
			}
		}
		count <- n
		return in.Err()
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("first"))
	big := make([]byte, 20<<10)
	for range 4 { // more than ReadAhead
		c.frame(frames.OpBinary, true, big)
	}
	sent := 5
	for range 12 { // a data frame every 50 ms, for 600 ms
		time.Sleep(50 * time.Millisecond)
		c.frame(frames.OpText, true, []byte("still here"))
		sent++
	}
	free()
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
	if n := waitFor(t, count, "the loop"); n != sent {
		t.Errorf("the loop got %d messages, want %d", n, sent)
	}
}

// lcHookConn calls onWake, once armed, the first time colibri moves the
// read deadline into the past to wake its readers, which it does right
// after cancelling the handler's context.
type lcHookConn struct {
	net.Conn
	armed  atomic.Bool
	once   sync.Once
	onWake func()
}

func (c *lcHookConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Unix(2, 0)) && c.armed.Load() {
		c.once.Do(c.onWake)
	}
	return c.Conn.SetReadDeadline(t)
}

// TestLifecycleWriterRefusedOnceTheHandlerReturned: "A Writer left open
// when the handler returns is abandoned: its message ends unfinished, the
// closing handshake goes ahead at once, and the Writer's later calls
// return ErrClosed" (handlers.md); the handler's context "always ends
// after closing has begun, so once it is done ... writes are refused". A
// task that sees the context end because the handler returned and then
// writes to its open Writer must get ErrClosed, and nothing of that write
// may reach the peer. The hook holds colibri at the point where it has
// cancelled the context (and wakes readers) but not yet abandoned the
// Writer: the ordering a busy scheduler produces now and then.
func TestLifecycleWriterRefusedOnceTheHandlerReturned(t *testing.T) {
	wrote := make(chan error, 1)
	hook := &lcHookConn{}
	hook.onWake = func() {
		select { // hold colibri until the task has written (bounded, should it be refused)
		case err := <-wrote:
			wrote <- err
		case <-time.After(500 * time.Millisecond):
		}
	}
	served := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, nil)
		if err != nil {
			return
		}
		hook.Conn = u.Conn
		u.Conn = hook
		cfg := &wsconn.Config{Logger: slog.New(slog.DiscardHandler), FragmentSize: 4, CloseTimeout: 500 * time.Millisecond, PingInterval: -1}
		go func() {
			served <- wsconn.Serve(context.Background(), u, struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				opened := make(chan struct{})
				_ = s.Go(func(ctx context.Context) error {
					w, err := out.Writer(context.Background(), messages.KindText)
					if err != nil {
						return err
					}
					_, _ = w.Write([]byte("head"))
					close(opened)
					<-ctx.Done() // the handler returned
					_, err = w.Write([]byte("late"))
					wrote <- err
					_ = w.Close()
					return nil
				})
				<-opened
				hook.armed.Store(true)
				return nil
			}, cfg)
		}()
	}))
	defer srv.Close()
	c := dialRaw(t, "ws"+strings.TrimPrefix(srv.URL, "http"))
	if h, p := c.read(); h.Op != frames.OpText || h.Fin || string(p) != "head" {
		t.Fatalf("got %v fin=%v %q, want the Writer's first fragment", h.Op, h.Fin, p)
	}
	h, p := c.read()
	c.answerClose(frames.CloseNormal)
	waitFor(t, served, "Serve")
	if err := waitFor(t, wrote, "the task's write"); !errors.Is(err, wsconn.ErrClosed) {
		t.Errorf("write to the open Writer after the handler returned: %v, want ErrClosed", err)
	}
	if h.Op != frames.OpClose {
		t.Errorf("after the handler returned the peer got %v %q, want the CLOSE at once", h.Op, p)
	}
}
