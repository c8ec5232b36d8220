package app_test

// Adversarial combinations of the structured-concurrency contract, through
// app + router + a real loopback listener, seen by independent peers
// (gorilla/websocket or raw frames): panics, returns and closes that race
// with writes, busy loop bodies, shutdown in the middle of large messages,
// and goroutines that must not outlive their connection.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// advHandler is the handler type of the tests' routes.
type advHandler = wsconn.Handler[struct{}]

// advServe serves h at /ws through an App on a loopback listener whose
// accepted sockets have small send buffers, so that a peer that does not
// read holds a large write up. It returns the App and its host:port.
func advServe(t *testing.T, cfg wsconn.Config, h advHandler) (*app.App, string, func() error) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	r := router.New(router.WithConfig(cfg))
	router.WS(r, "/ws", nil, h)
	a := app.New(r, app.Config{Logger: quiet, NoSignals: true, ShutdownTimeout: 5 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base, stop := serveApp(t, a, smallSendBuffers{ln})
	return a, hostOf(base), stop
}

// advLeakCheck returns a function that checks, once the App is stopped,
// that no goroutine started since advLeakCheck was called is left.
func advLeakCheck(t *testing.T) func() {
	ignore := goleak.IgnoreCurrent()
	return func() {
		t.Helper()
		goleak.VerifyNone(t, ignore,
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
	}
}

// advWaitConns waits until the App serves n connections.
func advWaitConns(t *testing.T, a *app.App, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for a.Connections() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connection(s) open, want %d", a.Connections(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// advRecv is what a raw peer read: a whole data message, or a CLOSE.
type advRecv struct {
	op      frames.Opcode // OpText, OpBinary or OpClose
	payload []byte
	code    frames.CloseCode
	reason  string
}

// next reads frames until a whole data message or a CLOSE, answering
// nothing; PINGs and PONGs are skipped.
func (c *soakConn) next() (advRecv, error) {
	var msg advRecv
	started := false
	for {
		h, p, err := c.read()
		if err != nil {
			return msg, err
		}
		switch {
		case h.Op == frames.OpClose:
			if started {
				return msg, fmt.Errorf("CLOSE inside an unfinished message of %d bytes", len(msg.payload))
			}
			code, reason, err := frames.ParseClose(p)
			return advRecv{op: frames.OpClose, code: code, reason: reason}, err
		case h.Op.IsControl():
			continue
		case h.Op == frames.OpContinuation && !started, h.Op != frames.OpContinuation && started:
			return msg, fmt.Errorf("bad fragment sequence: %v", h.Op)
		}
		if !started {
			msg.op, started = h.Op, true
		}
		msg.payload = append(msg.payload, p...)
		if h.Fin {
			return msg, nil
		}
	}
}

// advDial opens a raw connection to /ws with the given receive buffer
// (0: the default).
func advDial(t *testing.T, host string, rcvbuf int) *soakConn {
	t.Helper()
	c, err := soakDial(host, "/ws", rcvbuf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// answerClose sends the peer's CLOSE with code and expects the server to
// hang up.
func (c *soakConn) answerClose(t *testing.T, code frames.CloseCode) {
	t.Helper()
	if err := c.send(frames.OpClose, []byte{byte(code >> 8), byte(code)}); err != nil {
		t.Fatal(err)
	}
	if err := c.expectHangUp(); err != nil {
		t.Fatal(err)
	}
}

// advWait receives from ch or fails after 5 s.
func advWait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// pattern returns n bytes whose content depends on seed, to check that a
// large message arrives whole and unmixed.
func pattern(seed byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i%251)
	}
	return p
}

// TestAdvPanicInLoopBodyClosesWith1011: closing.md: "A panic never takes
// the process down: colibri recovers it wherever it happens in the
// connection's goroutines (the handler, its tasks), logs it once with its
// stack, and closes with 1011." A panic raised inside the body of a range
// over in.Messages, in.Frames or in.Readers, in the handler or in a task,
// must close with 1011 like any other panic.
func TestAdvPanicInLoopBodyClosesWith1011(t *testing.T) {
	loops := map[string]func(in *wsconn.Inbound){
		"Messages": func(in *wsconn.Inbound) {
			for range in.Messages(0) {
				panic("body boom")
			}
		},
		"Frames": func(in *wsconn.Inbound) {
			for range in.Frames() {
				panic("body boom")
			}
		},
		"Readers": func(in *wsconn.Inbound) {
			for range in.Readers() {
				panic("body boom")
			}
		},
	}
	for name, loop := range loops {
		for _, inTask := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/task=%v", name, inTask), func(t *testing.T) {
				// The peer does not answer the CLOSE: a short CloseTimeout
				// ends the connection soon after.
				cfg := wsconn.Config{CloseTimeout: 200 * time.Millisecond}
				a, host, _ := advServe(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
					if inTask {
						_ = s.Go(func(context.Context) error { loop(in); return nil })
						<-ctx.Done()
						return nil
					}
					loop(in)
					return in.Err()
				})
				c := advDial(t, host, 0)
				defer c.nc.Close()
				if err := c.send(frames.OpText, []byte("trigger")); err != nil {
					t.Fatal(err)
				}
				if err := c.expectClose(frames.CloseInternalError); err != nil {
					t.Fatal(err)
				}
				advWaitConns(t, a, 0)
			})
		}
	}
}

// TestAdvTaskPanicWhileHandlerBlockedWriting: the handler is in the middle
// of a large write to a peer that does not read when a sibling task
// panics. The connection starts closing with 1011 and the handler's
// context ends at once, but the CLOSE waits for the message being
// written: once the peer reads again it gets the whole message, then
// 1011; the handler's write returned nil and its next write fails with
// ErrClosed.
func TestAdvTaskPanicWhileHandlerBlockedWriting(t *testing.T) {
	leaks := advLeakCheck(t)
	const size = 4 << 20
	big := pattern(7, size)
	peerSaw := make(chan struct{})
	panicked := make(chan struct{})
	type result struct {
		first, second error
		ctxDone       bool
	}
	results := make(chan result, 1)
	a, host, stop := advServe(t, wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		_ = s.Go(func(ctx context.Context) error {
			<-peerSaw // the handler's write is under way
			defer close(panicked)
			panic("task boom")
		})
		var r result
		r.first = out.WriteBinary(context.Background(), big)
		r.ctxDone = ctx.Err() != nil
		r.second = out.WriteText(context.Background(), "after")
		results <- r
		return nil
	})
	c := advDial(t, host, 4<<10)
	defer c.nc.Close()
	// The first bytes of the message prove the write under way; the rest
	// waits in the handler, which blocks on the full socket.
	if _, err := c.br.Peek(16); err != nil {
		t.Fatal(err)
	}
	close(peerSaw)
	advWait(t, panicked, "the task's panic")
	got, err := c.next()
	if err != nil {
		t.Fatalf("reading the message under way: %v", err)
	}
	if got.op != frames.OpBinary || !bytes.Equal(got.payload, big) {
		t.Fatalf("got %v of %d bytes, want the whole %d-byte binary message", got.op, len(got.payload), size)
	}
	got, err = c.next()
	if err != nil || got.op != frames.OpClose || got.code != frames.CloseInternalError {
		t.Fatalf("after the message: %+v, %v; want CLOSE 1011", got, err)
	}
	r := advWait(t, results, "the handler")
	if r.first != nil {
		t.Errorf("the write under way when the task panicked returned %v, but it was delivered", r.first)
	}
	if !r.ctxDone {
		t.Error("the handler's context was still open after the task panicked")
	}
	if !errors.Is(r.second, wsconn.ErrClosed) {
		t.Errorf("write after the task panicked: %v, want ErrClosed", r.second)
	}
	c.answerClose(t, frames.CloseInternalError)
	advWaitConns(t, a, 0)
	_ = stop()
	leaks()
}

// TestAdvHandlerReturnsWhileTaskMidWrite: the handler returns nil while a
// task is in the middle of a large write to a slow peer. The 1000 goes
// out after that message, which arrives whole; the task's write returns
// nil, and its next write fails with ErrClosed carrying code 1000.
func TestAdvHandlerReturnsWhileTaskMidWrite(t *testing.T) {
	leaks := advLeakCheck(t)
	const size = 3 << 20
	big := pattern(3, size)
	started := make(chan struct{})
	release := make(chan struct{})
	type result struct{ first, second error }
	results := make(chan result, 1)
	a, host, stop := advServe(t, wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		_ = s.Go(func(ctx context.Context) error {
			close(started)
			var r result
			r.first = out.WriteBinary(context.Background(), big)
			r.second = out.WriteText(context.Background(), "too late")
			results <- r
			return nil
		})
		<-started
		<-release // the peer saw the write begin
		return nil
	})
	c := advDial(t, host, 4<<10)
	defer c.nc.Close()
	if _, err := c.br.Peek(16); err != nil {
		t.Fatal(err)
	}
	close(release)
	got, err := c.next()
	if err != nil || got.op != frames.OpBinary || !bytes.Equal(got.payload, big) {
		t.Fatalf("got %v of %d bytes (%v), want the whole %d-byte message", got.op, len(got.payload), err, size)
	}
	got, err = c.next()
	if err != nil || got.op != frames.OpClose || got.code != frames.CloseNormal {
		t.Fatalf("after the message: %+v, %v; want CLOSE 1000", got, err)
	}
	r := advWait(t, results, "the task")
	if r.first != nil {
		t.Errorf("the task's delivered write returned %v", r.first)
	}
	if !errors.Is(r.second, wsconn.ErrClosed) || wsconn.CloseStatus(r.second) != wsconn.CloseNormal {
		t.Errorf("task's write after the handler returned: %v (code %d), want ErrClosed with 1000", r.second, wsconn.CloseStatus(r.second))
	}
	c.answerClose(t, frames.CloseNormal)
	advWaitConns(t, a, 0)
	_ = stop()
	leaks()
}

// TestAdvTaskIgnoringContextHoldsOnlyTheTransport: after the handler
// returned, a task that ignores its context neither delays the CLOSE nor
// gets a write through: the peer gets 1000 at once and nothing else, the
// task's write fails with ErrClosed (code 1000), its s.Go is refused, and
// the connection (its TCP socket and its place in the App) lasts until
// the task returns, then ends.
func TestAdvTaskIgnoringContextHoldsOnlyTheTransport(t *testing.T) {
	leaks := advLeakCheck(t)
	release := make(chan struct{})
	type result struct {
		write, goErr error
		ran          atomic.Bool
	}
	var r result
	done := make(chan struct{})
	a, host, stop := advServe(t, wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		_ = s.Go(func(context.Context) error {
			defer close(done)
			<-release // deaf to its context
			r.write = out.WriteText(context.Background(), "late")
			r.goErr = s.Go(func(context.Context) error { r.ran.Store(true); return nil })
			return nil
		})
		return nil
	})
	c := advDial(t, host, 0)
	defer c.nc.Close()
	got, err := c.next()
	if err != nil || got.op != frames.OpClose || got.code != frames.CloseNormal {
		t.Fatalf("got %+v, %v; want CLOSE 1000 at once", got, err)
	}
	if err := c.send(frames.OpClose, []byte{0x03, 0xe8}); err != nil {
		t.Fatal(err)
	}
	// The task still runs: the transport stays open and counted.
	_ = c.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.br.ReadByte(); err == nil {
		t.Fatal("the server sent something after its CLOSE")
	} else if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		t.Fatalf("the transport closed (%v) while a task still ran", err)
	}
	if n := a.Connections(); n != 1 {
		t.Fatalf("%d connections while a task still runs, want 1", n)
	}
	close(release)
	<-done
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.expectHangUp(); err != nil {
		t.Fatal(err)
	}
	advWaitConns(t, a, 0)
	if !errors.Is(r.write, wsconn.ErrClosed) || wsconn.CloseStatus(r.write) != wsconn.CloseNormal {
		t.Errorf("write from a task after the handler returned: %v, want ErrClosed with 1000", r.write)
	}
	if !errors.Is(r.goErr, wsconn.ErrClosed) || r.ran.Load() {
		t.Errorf("Go after the handler returned: %v, ran %v; want ErrClosed and nothing run", r.goErr, r.ran.Load())
	}
	_ = stop()
	leaks()
}

// TestAdvGoRacingTheHandlerReturn: s.Go called from another goroutine
// while the handler returns either starts the task, which then runs to
// its end before the connection ends, or returns ErrClosed and never runs
// it. Nothing in between, and nothing left running.
func TestAdvGoRacingTheHandlerReturn(t *testing.T) {
	leaks := advLeakCheck(t)
	const conns = 20
	type tally struct{ accepted, refused, ran, other atomic.Int64 }
	var tl tally
	var spammers sync.WaitGroup
	a, host, stop := advServe(t, wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		go1 := make(chan struct{})
		spammers.Go(func() {
			close(go1)
			for {
				err := s.Go(func(context.Context) error {
					tl.ran.Add(1)
					return nil
				})
				switch {
				case err == nil:
					tl.accepted.Add(1)
				case errors.Is(err, wsconn.ErrClosed):
					tl.refused.Add(1)
					return
				default:
					tl.other.Add(1)
					return
				}
			}
		})
		<-go1
		return nil
	})
	for range conns {
		c := advDial(t, host, 0)
		got, err := c.next()
		if err != nil || got.op != frames.OpClose || got.code != frames.CloseNormal {
			t.Fatalf("got %+v, %v; want CLOSE 1000", got, err)
		}
		c.answerClose(t, frames.CloseNormal)
		c.nc.Close()
	}
	advWaitConns(t, a, 0)
	spammers.Wait()
	if tl.other.Load() != 0 || tl.refused.Load() != conns {
		t.Fatalf("Go errors: %d refusals for %d connections, %d other", tl.refused.Load(), conns, tl.other.Load())
	}
	// Every task Go accepted ran before its connection ended.
	if tl.ran.Load() != tl.accepted.Load() {
		t.Fatalf("%d tasks accepted, %d ran before the connections ended", tl.accepted.Load(), tl.ran.Load())
	}
	_ = stop()
	leaks()
}

// TestAdvOutCloseFromTaskWhileHandlerRanges: a task calls out.Close(4002)
// while the handler ranges. The CLOSE 4002 goes out, the handler's
// context stays open and its loop goes on until the peer answers, its
// writes meanwhile fail with ErrClosed carrying 4002, a second out.Close
// fails, and the loop ends cleanly (in.Err() nil) on the peer's 1000.
func TestAdvOutCloseFromTaskWhileHandlerRanges(t *testing.T) {
	leaks := advLeakCheck(t)
	type result struct {
		writeErr, secondClose, loopErr error
		ctxOpenInBody                  bool
		msgs                           []string
	}
	results := make(chan result, 1)
	a, host, stop := advServe(t, wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var r result
		for m := range in.Messages(0) {
			r.msgs = append(r.msgs, m.Text())
			if m.Text() == "close please" {
				closed := make(chan error, 1)
				_ = s.Go(func(context.Context) error {
					closed <- out.Close(4002, "task says bye")
					return nil
				})
				if err := <-closed; err != nil {
					return err
				}
				r.ctxOpenInBody = ctx.Err() == nil
				r.writeErr = out.WriteText(ctx, "refused")
				r.secondClose = out.Close(4003, "again")
			}
		}
		r.loopErr = in.Err()
		results <- r
		return errors.New("ignored: closing began already")
	})
	c := advDial(t, host, 0)
	defer c.nc.Close()
	if err := c.send(frames.OpText, []byte("close please")); err != nil {
		t.Fatal(err)
	}
	got, err := c.next()
	if err != nil || got.op != frames.OpClose || got.code != 4002 || got.reason != "task says bye" {
		t.Fatalf("got %+v, %v; want CLOSE 4002 \"task says bye\"", got, err)
	}
	// The peer still has something to say before it answers.
	if err := c.send(frames.OpText, []byte("last words")); err != nil {
		t.Fatal(err)
	}
	c.answerClose(t, frames.CloseNormal)
	r := advWait(t, results, "the handler")
	if !r.ctxOpenInBody {
		t.Error("the handler's context ended at out.Close; closing.md says it stays open until the peer answers")
	}
	if !errors.Is(r.writeErr, wsconn.ErrClosed) || wsconn.CloseStatus(r.writeErr) != 4002 {
		t.Errorf("write after out.Close: %v, want ErrClosed with 4002", r.writeErr)
	}
	if !errors.Is(r.secondClose, wsconn.ErrClosed) {
		t.Errorf("second out.Close: %v, want ErrClosed", r.secondClose)
	}
	if r.loopErr != nil {
		t.Errorf("in.Err() after the peer answered 1000: %v, want nil", r.loopErr)
	}
	if len(r.msgs) != 2 || r.msgs[1] != "last words" {
		t.Errorf("the loop read %q, want the peer's message sent after our CLOSE too", r.msgs)
	}
	advWaitConns(t, a, 0)
	_ = stop()
	leaks()
}

// TestAdvPeerCloseWhileBodyBusyIgnoringContext: a loop body busy far
// longer than the documented 2 x 20 ms, and deaf to its context. The
// peer's PING is answered and its CLOSE 4001 echoed while the body is
// still busy; the context ends with the peer's code; after the body, the
// loop ends with in.Err() carrying 4001 and the transport closes.
func TestAdvPeerCloseWhileBodyBusyIgnoringContext(t *testing.T) {
	leaks := advLeakCheck(t)
	inBody := make(chan struct{})
	release := make(chan struct{})
	ctxEnded := make(chan error, 1)
	loopErr := make(chan error, 1)
	a, host, stop := advServe(t, wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		go func() { // watches ctx; the body does not
			select {
			case <-ctx.Done():
				ctxEnded <- context.Cause(ctx)
			case <-release:
				ctxEnded <- nil
			}
		}()
		for range in.Messages(0) {
			close(inBody)
			<-release // busy, deaf to ctx
		}
		loopErr <- in.Err()
		return in.Err()
	})
	c := advDial(t, host, 0)
	defer c.nc.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	if err := c.send(frames.OpText, []byte("work")); err != nil {
		t.Fatal(err)
	}
	<-inBody
	if err := c.send(frames.OpPing, []byte("there?")); err != nil {
		t.Fatal(err)
	}
	h, p, err := c.read()
	if err != nil || h.Op != frames.OpPong || string(p) != "there?" {
		t.Fatalf("got %v %q, %v; want the PONG while the body is busy", h.Op, p, err)
	}
	if err := c.send(frames.OpClose, append([]byte{0x0f, 0xa1}, "tab closed"...)); err != nil {
		t.Fatal(err)
	}
	got, err := c.next()
	if err != nil || got.op != frames.OpClose || got.code != 4001 {
		t.Fatalf("got %+v, %v; want 4001 echoed while the body is busy", got, err)
	}
	if cause := advWait(t, ctxEnded, "the context"); wsconn.CloseStatus(cause) != 4001 {
		t.Fatalf("context cause %v, want the peer's 4001", cause)
	}
	close(release)
	if err := advWait(t, loopErr, "the loop"); wsconn.CloseStatus(err) != 4001 {
		t.Fatalf("in.Err() %v, want the peer's 4001", err)
	}
	if err := c.expectHangUp(); err != nil {
		t.Fatal(err)
	}
	advWaitConns(t, a, 0)
	_ = stop()
	leaks()
}

// TestAdvShutdownMidLargeMessagesFromSeveralWriters: while several tasks
// stream large, fragmented messages (WriteBinary, and a Writer held across
// many Write calls) to a slow peer, the App shuts down. Every message
// whose write (or Writer.Close) returned nil arrives whole, in order per
// writer, before the 1001; a Writer open when the shutdown began may
// finish its message; nothing follows the CLOSE; the connection counts as
// graceful.
func TestAdvShutdownMidLargeMessagesFromSeveralWriters(t *testing.T) {
	leaks := advLeakCheck(t)
	const (
		writers  = 3
		msgSize  = 200 << 10 // several 64 KiB fragments
		chunk    = 10 << 10
		minBytes = 1 << 20 // the peer has this much before the shutdown
	)
	var accepted [writers + 1]atomic.Int64 // writer index -> messages accepted
	// msg makes message seq of writer w: its header says who and which.
	msg := func(w, seq int) []byte {
		p := pattern(byte(w*31+seq), msgSize)
		binary.BigEndian.PutUint32(p[0:], uint32(w))
		binary.BigEndian.PutUint32(p[4:], uint32(seq))
		return p
	}
	shutdownBegan := make(chan struct{})
	var writerOpenAtShutdown atomic.Bool
	a, host, stop := advServe(t, wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for seq := 0; ; seq++ {
					if out.WriteBinary(context.Background(), msg(w, seq)) != nil {
						return
					}
					accepted[w].Add(1)
				}
			})
		}
		wg.Go(func() { // a streaming writer that finishes its message when told to stop
			w := writers
			for seq := 0; ; seq++ {
				mw, err := out.Writer(context.Background(), messages.KindBinary)
				if err != nil {
					return
				}
				p := msg(w, seq)
				for off := 0; off < len(p); off += chunk {
					if off > 0 && ctx.Err() != nil {
						select {
						case <-shutdownBegan:
							writerOpenAtShutdown.Store(true)
						default:
						}
					}
					if _, err := mw.Write(p[off : off+chunk]); err != nil {
						_ = mw.Close()
						return
					}
				}
				if mw.Close() != nil {
					return
				}
				accepted[w].Add(1)
			}
		})
		wg.Wait() // the handler stays until its writers are done
		return nil
	})
	c := advDial(t, host, 16<<10)
	defer c.nc.Close()
	_ = c.nc.SetDeadline(time.Now().Add(20 * time.Second))
	var received [writers + 1]int
	total := 0
	var report router.ShutdownReport
	var shutErr error
	shut := make(chan struct{})
	for {
		if total >= minBytes && !closedChan(shutdownBegan) {
			close(shutdownBegan)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				report, shutErr = a.Shutdown(ctx)
				close(shut)
			}()
		}
		got, err := c.next()
		if err != nil {
			t.Fatalf("after %v messages: %v", received, err)
		}
		if got.op == frames.OpClose {
			if got.code != frames.CloseGoingAway {
				t.Fatalf("CLOSE %d %q, want 1001", got.code, got.reason)
			}
			break
		}
		if len(got.payload) != msgSize {
			t.Fatalf("a message of %d bytes, want %d", len(got.payload), msgSize)
		}
		w, seq := int(binary.BigEndian.Uint32(got.payload)), int(binary.BigEndian.Uint32(got.payload[4:]))
		if w > writers || seq != received[w] || !bytes.Equal(got.payload, msg(w, seq)) {
			t.Fatalf("message %d of writer %d out of order or damaged (expected seq %d)", seq, w, received[w])
		}
		received[w]++
		total += len(got.payload)
		time.Sleep(time.Millisecond) // a slow reader
	}
	c.answerClose(t, frames.CloseGoingAway)
	advWait(t, shut, "the shutdown")
	if shutErr != nil || report.Graceful != 1 || report.Forced != 0 {
		t.Fatalf("shutdown: %+v, %v; want 1 graceful", report, shutErr)
	}
	for w := range writers + 1 {
		if int64(received[w]) != accepted[w].Load() {
			t.Errorf("writer %d: %d messages accepted, %d received before the 1001", w, accepted[w].Load(), received[w])
		}
	}
	t.Logf("received %v; the Writer was open when the shutdown began: %v", received, writerOpenAtShutdown.Load())
	_ = stop()
	leaks()
}

// TestAdvHandlerErrorWrappingCloseError: closing.md: "the handler returned
// a *wsconn.CloseError, or an error wrapping one: its Code, its Reason";
// the same for a task. Checked on the wire with gorilla for several ways
// of wrapping, for the handler and for a task.
func TestAdvHandlerErrorWrappingCloseError(t *testing.T) {
	leaks := advLeakCheck(t)
	ce := &wsconn.CloseError{Code: 4010, Reason: "room gone"}
	cases := map[string]error{
		"fmt.Errorf":  fmt.Errorf("serving room: %w", ce),
		"errors.Join": errors.Join(errors.New("db"), ce),
		"twice":       fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", ce)),
	}
	var mu sync.Mutex
	var ret error
	var fromTask bool
	a, host, stop := advServe(t, wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		mu.Lock()
		err, task := ret, fromTask
		mu.Unlock()
		if task {
			_ = s.Go(func(context.Context) error { return err })
			for range in.Messages(0) {
			}
			return in.Err()
		}
		return err
	})
	for name, err := range cases {
		for _, task := range []bool{false, true} {
			mu.Lock()
			ret, fromTask = err, task
			mu.Unlock()
			c, _, derr := gorilla.DefaultDialer.Dial("ws://"+host+"/ws", nil)
			if derr != nil {
				t.Fatal(derr)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, rerr := c.ReadMessage()
			got, ok := errors.AsType[*gorilla.CloseError](rerr)
			if !ok || got.Code != 4010 || got.Text != "room gone" {
				t.Errorf("%s (task %v): %v, want CLOSE 4010 \"room gone\"", name, task, rerr)
			}
			c.Close()
			advWaitConns(t, a, 0)
		}
	}
	_ = stop()
	leaks()
}

// closedChan reports whether ch is closed.
func closedChan(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestAdvPingAfterClosingMatchesErrClosed: handlers.md, Writing: "Once
// the connection has started closing, for whatever reason (...), every
// write returns an error matching wsconn.ErrClosed that also wraps the
// cause"; out.Ping is one of the table's writes. Called with the
// handler's context once closing began (a shutdown, a failed task), Ping
// must report ErrClosed too.
func TestAdvPingAfterClosingMatchesErrClosed(t *testing.T) {
	for _, why := range []string{"shutdown", "failed task"} {
		t.Run(why, func(t *testing.T) {
			errs := make(chan error, 1)
			a, host, _ := advServe(t, wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				if why == "failed task" {
					_ = s.Go(func(context.Context) error { return errors.New("feed failed") })
				}
				<-ctx.Done()
				errs <- out.Ping(ctx, []byte("still there?"))
				return nil
			})
			c := advDial(t, host, 0)
			defer c.nc.Close()
			want := frames.CloseInternalError
			if why == "shutdown" {
				want = frames.CloseGoingAway
				advWaitConns(t, a, 1)
				go func() { _, _ = a.Shutdown(context.Background()) }()
			}
			got, err := c.next()
			if err != nil || got.op != frames.OpClose || got.code != want {
				t.Fatalf("got %+v, %v; want CLOSE %d", got, err, want)
			}
			_ = c.send(frames.OpClose, []byte{byte(want >> 8), byte(want)})
			if err := advWait(t, errs, "the Ping"); !errors.Is(err, wsconn.ErrClosed) {
				t.Fatalf("Ping once closing began: %v, want an error matching ErrClosed", err)
			}
			advWaitConns(t, a, 0)
		})
	}
}

// TestAdvCloseErrorWrappingCanceledKeepsItsCode: closing.md: "the
// handler returned a *wsconn.CloseError, or an error wrapping one: its
// Code"; "a sibling task returned a *wsconn.CloseError, or an error
// wrapping one: its Code". A CloseError the application made, whose Err
// records that some inner operation was cancelled, must still close with
// its code.
func TestAdvCloseErrorWrappingCanceledKeepsItsCode(t *testing.T) {
	ret := func() error {
		inner, cancel := context.WithCancel(context.Background())
		cancel()
		return &wsconn.CloseError{Code: 4008, Reason: "lookup cancelled", Err: inner.Err()}
	}
	for _, task := range []bool{false, true} {
		t.Run(fmt.Sprintf("task=%v", task), func(t *testing.T) {
			a, host, _ := advServe(t, wsconn.Config{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				if !task {
					return ret()
				}
				_ = s.Go(func(context.Context) error { return ret() })
				for range in.Messages(0) {
				}
				return in.Err()
			})
			c := advDial(t, host, 0)
			defer c.nc.Close()
			_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
			got, err := c.next()
			if err != nil || got.op != frames.OpClose || got.code != 4008 {
				t.Fatalf("got %+v, %v; want CLOSE 4008", got, err)
			}
			_ = c.send(frames.OpClose, []byte{0x0f, 0xa8})
			advWaitConns(t, a, 0)
		})
	}
}
