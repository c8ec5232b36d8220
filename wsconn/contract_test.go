package wsconn_test

// The structured-concurrency contract at its edges, over loopback sockets
// with clients colibri did not write (gorilla/websocket, or raw frames):
// what a user sees when a task panics, when a loop body is busy, when the
// peer has gone, on shutdown, with concurrent and unfinished messages,
// and when a task comes too late.

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/group"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// readClose reads from c until the server's CLOSE and returns its code.
func readClose(t *testing.T, c *gorilla.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			ce, ok := errors.AsType[*gorilla.CloseError](err)
			if !ok {
				t.Fatalf("read: %v, want a close frame", err)
			}
			return ce.Code
		}
	}
}

// TestTaskPanicClosesWith1011: a panic in a task started with s.Go, or in
// a task that task started, closes the connection with 1011, is logged
// once with its stack, and leaves the process running.
func TestTaskPanicClosesWith1011(t *testing.T) {
	for _, nested := range []bool{false, true} {
		name := "task"
		if nested {
			name = "task of a task"
		}
		t.Run(name, func(t *testing.T) {
			var logs testlog.Buffer
			cfg := &wsconn.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				boom := func(context.Context) error { panic("boom") }
				_ = s.Go(func(ctx context.Context) error {
					if nested {
						return s.Go(boom)
					}
					return boom(ctx)
				})
				for range in.Messages(0) {
				}
				return in.Err()
			})
			c := dialGorilla(t, url)
			if code := readClose(t, c); code != 1011 {
				t.Fatalf("close code %d, want 1011", code)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(logs.String(), "connection task panicked") && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			out := logs.String()
			if n := strings.Count(out, "msg="); n != 1 {
				t.Fatalf("%d panic lines, want 1:\n%s", n, out)
			}
			if !strings.Contains(out, "panic=boom") || !strings.Contains(out, "contract_test.go") {
				t.Fatalf("the panic line lacks the value or the stack:\n%s", out)
			}
		})
	}
}

// TestControlFramesServedWhileBodyBusy: while a loop body is busy, the
// peer's PING is answered and its CLOSE cancels the handler's context at
// once, even with another message queued in front of them.
func TestControlFramesServedWhileBodyBusy(t *testing.T) {
	cancelled := make(chan time.Duration, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
			start := time.Now()
			select { // a slow call that heeds its context
			case <-ctx.Done():
				cancelled <- time.Since(start)
				return ctx.Err()
			case <-time.After(3 * time.Second):
			}
		}
		return in.Err()
	})
	c := dialGorilla(t, url)
	pong := make(chan struct{}, 1)
	c.SetPongHandler(func(string) error { pong <- struct{}{}; return nil })
	closed := make(chan int, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				ce, _ := errors.AsType[*gorilla.CloseError](err)
				if ce != nil {
					closed <- ce.Code
				} else {
					closed <- -1
				}
				return
			}
		}
	}()
	if err := c.WriteMessage(gorilla.TextMessage, []byte("work")); err != nil {
		t.Fatal(err)
	}
	// A second message waits behind the first: colibri reads it ahead to
	// reach the control frames after it.
	if err := c.WriteMessage(gorilla.TextMessage, []byte("more work")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the body is busy now
	sent := time.Now()
	if err := c.WriteControl(gorilla.PingMessage, []byte("there?"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pong:
		if d := time.Since(sent); d > time.Second {
			t.Errorf("PONG after %v", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no PONG while the loop body was busy")
	}
	sent = time.Now()
	msg := gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, "bye")
	if err := c.WriteControl(gorilla.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-cancelled:
		if d > 2*time.Second {
			t.Errorf("the context ended %v into the body", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the peer's CLOSE did not cancel the handler's context while its body was busy")
	}
	if code := <-closed; code != gorilla.CloseNormalClosure {
		t.Fatalf("close code %d, want 1000 echoed", code)
	}
	if d := time.Since(sent); d > time.Second {
		t.Errorf("the close took %v", d)
	}
}

// TestWritesAfterThePeerLeftFail: once the peer's CLOSE arrived, or its
// TCP connection dropped, a write returns an error matching ErrClosed
// that carries the close's cause.
func TestWritesAfterThePeerLeftFail(t *testing.T) {
	for _, how := range []string{"close frame", "tcp drop", "tcp drop, write-only handler"} {
		t.Run(how, func(t *testing.T) {
			result := make(chan error, 1)
			url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				if strings.HasSuffix(how, "write-only handler") {
					<-ctx.Done()
				} else {
					for range in.Messages(0) {
					}
				}
				result <- out.WriteText(context.Background(), "anyone?")
				return nil
			})
			c := dialGorilla(t, url)
			if how == "close frame" {
				msg := gorilla.FormatCloseMessage(gorilla.CloseGoingAway, "tab closed")
				if err := c.WriteControl(gorilla.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
					t.Fatal(err)
				}
			} else {
				time.Sleep(50 * time.Millisecond)
				c.UnderlyingConn().Close()
			}
			var err error
			select {
			case err = <-result:
			case <-time.After(5 * time.Second):
				t.Fatal("the handler did not learn that the peer left")
			}
			if !errors.Is(err, wsconn.ErrClosed) {
				t.Fatalf("write after the peer left: %v, want ErrClosed", err)
			}
			ce, ok := errors.AsType[*wsconn.CloseError](err)
			want := wsconn.CloseCode(frames.CloseAbnormal)
			if how == "close frame" {
				want = wsconn.CloseGoingAway
			}
			if !ok || ce.Code != want {
				t.Fatalf("write error %v carries no close %d", err, want)
			}
		})
	}
}

// TestShutdownSends1001ToHandlersIgnoringTheirContext: shutdown sends
// 1001 at once, even to a handler that neither reads nor heeds its
// context; its writes fail from then on; it is counted as forced when it
// outlives the deadline.
func TestShutdownSends1001ToHandlersIgnoringTheirContext(t *testing.T) {
	writeErr := make(chan error, 1)
	url, g := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for { // deaf to ctx
			if err := out.WriteText(context.Background(), "tick"); err != nil {
				writeErr <- err
				time.Sleep(1200 * time.Millisecond)
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	c := dialGorilla(t, url)
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	report := make(chan error, 1)
	start := time.Now()
	var forced atomic.Int64
	go func() {
		r, err := g.Shutdown(ctx)
		forced.Store(int64(r.Forced))
		report <- err
	}()
	if code := readClose(t, c); code != gorilla.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("1001 arrived %v after the shutdown began, not at once", d)
	}
	if err := <-writeErr; !errors.Is(err, wsconn.ErrClosed) || !errors.Is(err, wsconn.ErrShutdown) {
		t.Fatalf("write during shutdown: %v, want ErrClosed wrapping ErrShutdown", err)
	}
	if err := <-report; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if forced.Load() != 1 {
		t.Fatalf("%d forced, want 1: the handler outlived the deadline", forced.Load())
	}
}

// TestShutdownCountsSilentPeersAsForced: a peer that never answers the
// 1001 is cut at the deadline and counted as forced.
func TestShutdownCountsSilentPeersAsForced(t *testing.T) {
	url, g := testServer(t, nil, echo)
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("hi"))
	c.read()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, err := g.Shutdown(ctx)
		if err != nil || r.Forced != 1 || r.Graceful != 0 {
			t.Errorf("shutdown: %+v, %v; want 1 forced", r, err)
		}
	}()
	c.expectClose(frames.CloseGoingAway) // and never answer
	c.expectEOF()
	<-done
}

// TestConcurrentWritersNeverInterleave: a Writer owns its message until
// Close; whole messages written meanwhile from other goroutines wait, and
// the peer sees every message intact.
func TestConcurrentWritersNeverInterleave(t *testing.T) {
	cfg := &wsconn.Config{FragmentSize: 16}
	url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				for range 20 {
					w, err := out.Writer(ctx, messages.KindText)
					if err != nil {
						t.Error(err)
						return
					}
					for range 8 {
						_, _ = w.Write([]byte(strings.Repeat(string(rune('a'+i)), 10)))
					}
					if err := w.Close(); err != nil {
						t.Error(err)
					}
					if err := w.Close(); !errors.Is(err, wsconn.ErrClosed) {
						t.Errorf("second Close: %v, want ErrClosed", err)
					}
				}
			})
			wg.Go(func() {
				for range 20 {
					if err := out.WriteText(ctx, strings.Repeat(string(rune('A'+i)), 50)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		return nil
	})
	c := dialGorilla(t, url)
	for range 4 * 20 * 2 {
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if s := string(p); strings.Count(s, s[:1]) != len(s) {
			t.Fatalf("interleaved message %q", s)
		}
	}
	if code := readClose(t, c); code != gorilla.CloseNormalClosure {
		t.Fatalf("close code %d", code)
	}
}

// TestUnfinishedWriterDoesNotDelayTheClose: a handler that returns with a
// Writer open closes at once, not after WriteTimeout; the Writer then
// fails with ErrClosed.
func TestUnfinishedWriterDoesNotDelayTheClose(t *testing.T) {
	later := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		w, err := out.Writer(ctx, messages.KindBinary)
		if err != nil {
			return err
		}
		_, _ = w.Write(make([]byte, 100<<10)) // one fragment out, the rest held
		go func() {
			time.Sleep(200 * time.Millisecond)
			_, err := w.Write([]byte("late"))
			later <- err
		}()
		return nil
	})
	c := dialGorilla(t, url)
	start := time.Now()
	if code := readClose(t, c); code != gorilla.CloseNormalClosure {
		t.Fatalf("close code %d, want 1000", code)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the close came %v after the handler returned (WriteTimeout is 10 s)", d)
	}
	if err := <-later; !errors.Is(err, wsconn.ErrClosed) {
		t.Fatalf("write to an abandoned Writer: %v, want ErrClosed", err)
	}
}

// TestGoRefusesOnceTheConnectionEnded: Go reports that it started nothing.
func TestGoRefusesOnceTheConnectionEnded(t *testing.T) {
	sessions := make(chan *wsconn.Session[struct{}], 1)
	url, g := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		sessions <- s
		return nil
	})
	c := dialGorilla(t, url)
	readClose(t, c)
	s := <-sessions
	for deadline := time.Now().Add(5 * time.Second); g.Len() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the connection did not end")
		}
	}
	var ran atomic.Bool
	err := s.Go(func(context.Context) error { ran.Store(true); return nil })
	if !errors.Is(err, wsconn.ErrClosed) {
		t.Fatalf("Go after the end: %v, want ErrClosed", err)
	}
	time.Sleep(20 * time.Millisecond)
	if ran.Load() {
		t.Fatal("the refused task ran")
	}
}

// TestLoopTellsShutdownFromACleanClose: after a loop, in.Err() is nil when
// the peer closed cleanly and ErrShutdown when the server is shutting down.
func TestLoopTellsShutdownFromACleanClose(t *testing.T) {
	errs := make(chan error, 2)
	url, g := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		errs <- in.Err()
		return in.Err()
	})
	a := dialGorilla(t, url)
	msg := gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, "")
	_ = a.WriteControl(gorilla.CloseMessage, msg, time.Now().Add(time.Second))
	if err := <-errs; err != nil {
		t.Fatalf("after a clean close: %v, want nil", err)
	}
	b := dialGorilla(t, url)
	go func() { _, _ = g.Shutdown(context.Background()) }()
	if err := <-errs; !errors.Is(err, wsconn.ErrShutdown) {
		t.Fatalf("during shutdown: %v, want ErrShutdown", err)
	}
	if code := readClose(t, b); code != gorilla.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
}

// TestReadAheadIsBounded: behind more than ReadAhead bytes of data that a
// busy loop has not taken, colibri stops reading, so a PING behind them
// waits for the loop (TCP pushes back on the peer) and is answered once
// the loop reads on.
func TestReadAheadIsBounded(t *testing.T) {
	release := make(chan struct{})
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		first := true
		for range in.Messages(0) {
			if first {
				first = false
				<-release
			}
		}
		return in.Err()
	})
	c := dialRaw(t, url)
	c.frame(frames.OpBinary, true, []byte("hold"))
	time.Sleep(100 * time.Millisecond) // the body is busy, the background reader reads
	chunk := make([]byte, 16<<10)
	for range (wsconn.ReadAhead / len(chunk)) + 2 { // past the bound
		c.frame(frames.OpBinary, true, chunk)
	}
	c.frame(frames.OpPing, true, []byte("behind"))
	_ = c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.br.ReadByte(); err == nil {
		t.Fatal("the server answered a control frame behind more than ReadAhead bytes of unread data")
	}
	close(release)
	h, p := c.read()
	if h.Op != frames.OpPong || string(p) != "behind" {
		t.Fatalf("got %v %q, want the PONG once the loop read on", h.Op, p)
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
}

// TestJoiningDuringShutdownGetsTheShutdownCode: a connection whose place
// was claimed before a shutdown began, but which joins its group only
// after (the client saw the 101 and the shutdown came in between), is
// closed with the group's code, as every other connection is.
func TestJoiningDuringShutdownGetsTheShutdownCode(t *testing.T) {
	g := &group.Group{ShutdownCode: frames.CloseServiceRestart}
	cfg := &wsconn.Config{Logger: quietLogger}
	shut := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, u, ok := enterAndAccept(g, w, r, nil)
		if !ok {
			return
		}
		go func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := g.Shutdown(sctx)
			shut <- err
		}()
		for { // until the shutdown has begun: the group refuses places
			p, err := g.Enter(context.Background())
			if errors.Is(err, group.ErrClosed) {
				break
			}
			group.Leave(p)
			time.Sleep(time.Millisecond)
		}
		go wsconn.Serve(ctx, u, struct{}{}, echo, cfg)
	}))
	defer srv.Close()
	c, _, err := gorilla.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code := readClose(t, c); code != int(frames.CloseServiceRestart) {
		t.Errorf("close code %d, want the group's %d", code, frames.CloseServiceRestart)
	}
	_ = c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(int(frames.CloseServiceRestart), ""), time.Now().Add(time.Second))
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// IDs are random rather than counted: distinct between connections, and
// below 2^63 so that they fit OpenTelemetry's signed attribute.
func TestConnectionIDsAreDistinctAndFitInt64(t *testing.T) {
	const n = 20
	ids := make(chan uint64, n)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		ids <- s.ID()
		return nil
	})
	seen := make(map[uint64]bool)
	for range n {
		c := dialRaw(t, url)
		c.expectClose(frames.CloseNormal)
		id := <-ids
		if id >= 1<<63 {
			t.Errorf("ID %d does not fit an int64", id)
		}
		if seen[id] {
			t.Errorf("ID %d given twice", id)
		}
		seen[id] = true
	}
}

// AfterFunc's f runs once the handler's context ends, and the connection
// is not over (it holds its place in the group, which a graceful shutdown
// waits for) until f returns. A stopped f never runs; one registered after
// the context ended runs at once.
func TestAfterFuncIsBoundToTheConnection(t *testing.T) {
	release := make(chan struct{})
	ran := make(chan string, 3)
	url, g := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		s.AfterFunc(func() {
			<-release
			ran <- "bound"
		})
		stop := s.AfterFunc(func() { ran <- "stopped" })
		if !stop() {
			t.Error("stop before the context ended reported false")
		}
		for range in.Messages(0) {
		}
		<-ctx.Done()
		s.AfterFunc(func() { ran <- "late" })
		select {
		case r := <-ran:
			if r != "late" {
				t.Errorf("ran %q first, want the late f at once", r)
			}
		default:
			t.Error("an f registered after the context ended did not run at once")
		}
		return in.Err()
	})
	c := dialRaw(t, url)
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
	time.Sleep(100 * time.Millisecond)
	if n := g.Len(); n != 1 {
		t.Fatalf("the group holds %d connections while f runs, want 1", n)
	}
	close(release)
	if r := waitFor(t, ran, "f"); r != "bound" {
		t.Fatalf("ran %q, want the bound f", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the connection did not end after f returned")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case r := <-ran:
		t.Fatalf("ran %q too", r)
	default:
	}
}
