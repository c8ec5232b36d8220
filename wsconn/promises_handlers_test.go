package wsconn_test

// The promises of docs/handlers.md that other tests leave open, each kept
// over a loopback socket with a client colibri did not write (raw frames
// or gorilla/websocket): why the handler's context ended, what writes
// return once closing began, that every accepted write reaches the peer
// before the CLOSE, the task group's rules and Go's error, one reader at
// a time, borrowed readers, and what a write's context bounds.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// answerClose sends the peer's CLOSE, ignoring a server that hung up
// already.
func (c *rawClient) answerClose(code frames.CloseCode) {
	_, _ = c.nc.Write(maskedFrame(frames.Header{Op: frames.OpClose, Fin: true}, closePayload(code, ""))) // zero mask: the payload goes as it is
}

// TestPromiseContextCauseSaysWhy: the handler's context ends for each
// reason handlers.md lists, context.Cause says which, and a write from
// then on fails with an error matching ErrClosed that wraps that same
// cause.
func TestPromiseContextCauseSaysWhy(t *testing.T) {
	taskErr := errors.New("feed failed")
	tests := []struct {
		name   string
		cfg    *wsconn.Config
		task   func(ctx context.Context) error // started with s.Go when set
		client func(t *testing.T, c *rawClient, g *group.Group)
		check  func(err error) bool // holds for the cause and the write error
	}{{
		name: "peer closed",
		client: func(t *testing.T, c *rawClient, _ *group.Group) {
			c.frame(frames.OpClose, true, closePayload(4001, "tab closed"))
			c.expectClose(4001)
		},
		check: func(err error) bool { return wsconn.CloseStatus(err) == 4001 && errors.Is(err, wsconn.ErrClosed) },
	}, {
		name: "sibling task failed",
		task: func(context.Context) error { return taskErr },
		client: func(t *testing.T, c *rawClient, _ *group.Group) {
			c.expectClose(frames.CloseInternalError)
		},
		check: func(err error) bool { return errors.Is(err, taskErr) },
	}, {
		name: "sibling task panicked",
		task: func(context.Context) error { panic("task boom") },
		client: func(t *testing.T, c *rawClient, _ *group.Group) {
			c.expectClose(frames.CloseInternalError)
		},
		check: func(err error) bool { return err != nil && strings.Contains(err.Error(), "task boom") },
	}, {
		name: "protocol violation",
		client: func(t *testing.T, c *rawClient, _ *group.Group) {
			c.write([]byte{0x81, 0x02, 'h', 'i'}) // unmasked
			c.expectClose(frames.CloseProtocolError)
		},
		check: func(err error) bool {
			return errors.Is(err, frames.ErrUnmasked) && wsconn.CloseStatus(err) == frames.CloseProtocolError
		},
	}, {
		name: "keep-alive timeout",
		cfg:  &wsconn.Config{PingInterval: 40 * time.Millisecond, PongTimeout: 80 * time.Millisecond},
		client: func(t *testing.T, c *rawClient, _ *group.Group) {
			if reason := c.expectClose(frames.CloseGoingAway); reason != "ping timeout" {
				t.Errorf("reason %q, want ping timeout", reason)
			}
		},
		check: func(err error) bool { return errors.Is(err, wsconn.ErrPingTimeout) },
	}, {
		name: "idle timeout",
		cfg:  &wsconn.Config{IdleTimeout: 80 * time.Millisecond},
		client: func(t *testing.T, c *rawClient, _ *group.Group) {
			if reason := c.expectClose(frames.CloseGoingAway); reason != "idle timeout" {
				t.Errorf("reason %q, want idle timeout", reason)
			}
		},
		check: func(err error) bool { return errors.Is(err, wsconn.ErrIdleTimeout) },
	}, {
		name:   "transport failed",
		client: func(t *testing.T, c *rawClient, _ *group.Group) { c.nc.Close() },
		check:  func(err error) bool { return wsconn.CloseStatus(err) == frames.CloseAbnormal },
	}, {
		name: "server shutting down",
		client: func(t *testing.T, c *rawClient, g *group.Group) {
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err := g.Shutdown(ctx)
				done <- err
			}()
			if reason := c.expectClose(frames.CloseGoingAway); reason != "server shutting down" {
				t.Errorf("reason %q, want server shutting down", reason)
			}
			c.answerClose(frames.CloseGoingAway)
			if err := waitFor(t, done, "the shutdown"); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		},
		check: func(err error) bool { return errors.Is(err, wsconn.ErrShutdown) },
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type result struct{ cause, write error }
			results := make(chan result, 1)
			cfg := tt.cfg
			if cfg == nil {
				cfg = &wsconn.Config{}
			}
			url, g := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				if tt.task != nil {
					_ = s.Go(tt.task)
				}
				<-ctx.Done() // a write-only handler: colibri reads in the background
				results <- result{context.Cause(ctx), out.WriteText(context.Background(), "too late")}
				return nil
			})
			c := dialRaw(t, url)
			tt.client(t, c, g)
			r := waitFor(t, results, "the handler's context to end")
			if !tt.check(r.cause) {
				t.Errorf("context.Cause(ctx) = %v, which does not say why", r.cause)
			}
			if !errors.Is(r.write, wsconn.ErrClosed) || !tt.check(r.write) {
				t.Errorf("write after the context ended: %v, want ErrClosed wrapping the cause", r.write)
			}
		})
	}
}

// TestPromiseOutCloseKeepsTheContextOpen: after out.Close the handler's
// context stays open and the loop still yields what the peer sends, until
// the peer's CLOSE ends it cleanly; writes fail with ErrClosed carrying
// the code out.Close chose.
func TestPromiseOutCloseKeepsTheContextOpen(t *testing.T) {
	type result struct {
		ctxErr, write, inErr, cause error
		got                         []string
	}
	results := make(chan result, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var r result
		if err := out.Close(4000, "done"); err != nil {
			return err
		}
		r.ctxErr = ctx.Err()
		r.write = out.WriteText(ctx, "too late")
		for m := range in.Messages(0) {
			r.got = append(r.got, m.Text())
		}
		r.inErr, r.cause = in.Err(), context.Cause(ctx)
		results <- r
		return errors.New("ignored: the code is decided")
	})
	c := dialRaw(t, url)
	if reason := c.expectClose(4000); reason != "done" {
		t.Fatalf("reason %q", reason)
	}
	c.frame(frames.OpText, true, []byte("last words"))
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectEOF()
	r := waitFor(t, results, "the handler")
	if r.ctxErr != nil {
		t.Errorf("ctx ended at out.Close: %v", r.ctxErr)
	}
	if !errors.Is(r.write, wsconn.ErrClosed) || wsconn.CloseStatus(r.write) != 4000 {
		t.Errorf("write after out.Close: %v, want ErrClosed with code 4000", r.write)
	}
	if len(r.got) != 1 || r.got[0] != "last words" {
		t.Errorf("after out.Close the loop got %q, want the peer's last message", r.got)
	}
	if r.inErr != nil {
		t.Errorf("in.Err() after the peer's 1000: %v, want nil", r.inErr)
	}
	if r.cause == nil {
		t.Error("the peer's CLOSE did not end the context")
	}
}

// TestPromiseEveryAcceptedWriteArrivesBeforeTheClose: whatever starts the
// closing (out.Close, a failed task, the peer's CLOSE) while several
// goroutines write fragmented messages, each write that returned nil
// reaches the peer whole before colibri's CLOSE, and each refused write
// matches ErrClosed and sends nothing.
func TestPromiseEveryAcceptedWriteArrivesBeforeTheClose(t *testing.T) {
	const writers = 4
	for _, how := range []string{"out.Close", "task failed", "peer closed"} {
		t.Run(how, func(t *testing.T) {
			trigger := make(chan struct{})
			pull := sync.OnceFunc(func() { close(trigger) })
			accepted := make(chan [writers]int, 1)
			cfg := &wsconn.Config{FragmentSize: 100}
			url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				var counts [writers]int
				var wg sync.WaitGroup
				for w := range writers {
					wg.Go(func() {
						for i := 0; ; i++ {
							msg := fmt.Sprintf("%d %d %s", w, i, strings.Repeat("x", i%5*70))
							if err := out.WriteText(context.Background(), msg); err != nil {
								if !errors.Is(err, wsconn.ErrClosed) {
									t.Errorf("writer %d: %v, want ErrClosed", w, err)
								}
								return
							}
							counts[w]++
						}
					})
				}
				switch how {
				case "out.Close":
					<-trigger
					_ = out.Close(4000, "enough")
				case "task failed":
					_ = s.Go(func(ctx context.Context) error {
						<-trigger
						return errors.New("upstream gone")
					})
				}
				wg.Wait()
				accepted <- counts
				return nil
			})
			t.Cleanup(pull) // a failed test must not leave the handler waiting
			c := dialRaw(t, url)
			var received [writers]int
			var msg []byte
			total := 0
			for {
				h, p := c.read()
				if h.Op == frames.OpClose {
					code, _, _ := frames.ParseClose(p)
					want := map[string]frames.CloseCode{"out.Close": 4000, "task failed": frames.CloseInternalError, "peer closed": 4001}[how]
					if code != want {
						t.Fatalf("close code %v, want %v", code, want)
					}
					if len(msg) != 0 {
						t.Fatalf("CLOSE in the middle of a message %q", msg)
					}
					break
				}
				if h.Op == frames.OpPing || h.Op == frames.OpPong {
					continue
				}
				msg = append(msg, p...)
				if !h.Fin {
					continue
				}
				var w, i int
				if _, err := fmt.Sscanf(string(msg), "%d %d", &w, &i); err != nil || w < 0 || w >= writers {
					t.Fatalf("garbled message %q", msg)
				}
				if i != received[w] || len(msg) != len(fmt.Sprintf("%d %d %s", w, i, strings.Repeat("x", i%5*70))) {
					t.Fatalf("writer %d: got message %d (%d bytes), want message %d whole", w, i, len(msg), received[w])
				}
				received[w]++
				msg = msg[:0]
				if total++; total == 200 {
					if how == "peer closed" {
						c.frame(frames.OpClose, true, closePayload(4001, ""))
					} else {
						pull()
					}
				}
			}
			if how != "peer closed" {
				c.answerClose(frames.CloseNormal)
			}
			c.expectEOF()
			if got := waitFor(t, accepted, "the writers"); got != received {
				t.Fatalf("writes that returned nil %v, messages the peer got %v", got, received)
			}
		})
	}
}

// TestPromiseTaskResultsFollowTheRules: a task's *CloseError gives its
// code and reason and is not logged; any other error gives 1011 and is
// logged once as "connection task failed"; a task that returns its
// context's error, ErrClosed or ErrShutdown has not failed and leaves the
// connection open.
func TestPromiseTaskResultsFollowTheRules(t *testing.T) {
	closing := []struct {
		name   string
		err    error
		code   frames.CloseCode
		reason string
		logged string
	}{
		{"close error", fmt.Errorf("quota: %w", &wsconn.CloseError{Code: 4002, Reason: "over quota"}), 4002, "over quota", ""},
		{"other error", errors.New("feed failed"), frames.CloseInternalError, "internal error", `msg="connection task failed"`},
	}
	for _, tt := range closing {
		t.Run(tt.name, func(t *testing.T) {
			var logs testlog.Buffer
			cfg := &wsconn.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				_ = s.Go(func(context.Context) error { return tt.err })
				for range in.Messages(0) {
				}
				return in.Err()
			})
			c := dialRaw(t, url)
			if reason := c.expectClose(tt.code); reason != tt.reason {
				t.Errorf("reason %q, want %q", reason, tt.reason)
			}
			c.answerClose(tt.code)
			c.expectEOF()
			// The line is written before the CLOSE goes out.
			out := logs.String()
			if tt.logged == "" && out != "" {
				t.Errorf("logged:\n%s", out)
			}
			if tt.logged != "" && (strings.Count(out, "msg=") != 1 || !strings.Contains(out, tt.logged) || !strings.Contains(out, "feed failed")) {
				t.Errorf("want one line %s with the error; log:\n%s", tt.logged, out)
			}
		})
	}
	notFailures := []struct {
		name string
		err  func(ctx context.Context) error
	}{
		{"context's error", func(ctx context.Context) error {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			return cctx.Err()
		}},
		{"ErrClosed", func(context.Context) error { return fmt.Errorf("send: %w", wsconn.ErrClosed) }},
		{"ErrShutdown", func(context.Context) error { return wsconn.ErrShutdown }},
	}
	for _, tt := range notFailures {
		t.Run(tt.name, func(t *testing.T) {
			var logs testlog.Buffer
			cfg := &wsconn.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			returned := make(chan struct{})
			url, _ := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				_ = s.Go(func(ctx context.Context) error {
					defer close(returned)
					return tt.err(ctx)
				})
				return echo(ctx, in, out, s)
			})
			c := dialRaw(t, url)
			waitFor(t, returned, "the task")
			// Negative check, bounded: the connection still echoes for
			// 100 ms after the task returned.
			for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline); {
				c.frame(frames.OpText, true, []byte("still open?"))
				if h, p := c.read(); h.Op != frames.OpText || string(p) != "still open?" {
					t.Fatalf("got %v %q: the task's %s closed the connection", h.Op, p, tt.name)
				}
				time.Sleep(10 * time.Millisecond)
			}
			c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
			c.expectClose(frames.CloseNormal)
			c.expectEOF()
			if out := logs.String(); out != "" {
				t.Errorf("logged:\n%s", out)
			}
		})
	}
}

// TestPromiseGoStartsTasksWhileTheHandlerRuns: while the handler runs,
// Go returns nil and the task runs, even once the connection has begun
// closing; its context is then done already.
func TestPromiseGoStartsTasksWhileTheHandlerRuns(t *testing.T) {
	type result struct {
		goErr  error
		ran    bool
		ctxErr error
	}
	results := make(chan result, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-ctx.Done() // the peer closed
		ran := make(chan error, 1)
		err := s.Go(func(ctx context.Context) error {
			ran <- ctx.Err()
			return nil
		})
		r := result{goErr: err}
		select {
		case r.ctxErr = <-ran:
			r.ran = true
		case <-time.After(5 * time.Second):
		}
		results <- r
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
	r := waitFor(t, results, "the handler")
	if r.goErr != nil || !r.ran {
		t.Fatalf("Go while the handler runs: %v, ran %v; want nil and the task run", r.goErr, r.ran)
	}
	if r.ctxErr == nil {
		t.Fatal("the task's context was not done although the connection was closing")
	}
}

// TestPromiseGoRefusesOnceTheHandlerReturned: handlers.md's session table
// says Go is callable "until the handler has returned, then it returns
// ErrClosed". Here the handler has returned (its 1000 reached the peer)
// and the peer has not answered yet: Go must start nothing.
func TestPromiseGoRefusesOnceTheHandlerReturned(t *testing.T) {
	sessions := make(chan *wsconn.Session[struct{}], 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		sessions <- s
		return nil
	})
	c := dialRaw(t, url)
	c.expectClose(frames.CloseNormal) // sent once the handler returned
	s := waitFor(t, sessions, "the session")
	var ran atomic.Bool
	err := s.Go(func(context.Context) error { ran.Store(true); return nil })
	c.answerClose(frames.CloseNormal)
	c.expectEOF() // the connection waited for whatever Go started
	if !errors.Is(err, wsconn.ErrClosed) || ran.Load() {
		t.Fatalf("Go after the handler returned: err %v, task ran %v; want ErrClosed and nothing started", err, ran.Load())
	}
}

// TestPromiseOneReaderAtATime: a second loop while another goroutine
// ranges ends at once, yields nothing and reports ErrBusyReading; the
// first loop goes on undisturbed.
func TestPromiseOneReaderAtATime(t *testing.T) {
	type result struct {
		yielded int
		err     error
	}
	second := make(chan result, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if m.Text() == "start" {
				done := make(chan struct{})
				_ = s.Go(func(ctx context.Context) error {
					defer close(done)
					var r result
					for range in.Frames() {
						r.yielded++
					}
					r.err = in.Err()
					second <- r
					return nil
				})
				<-done
			}
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, true, []byte("start"))
	c.frame(frames.OpText, true, []byte("more"))
	for _, want := range []string{"start", "more"} {
		if h, p := c.read(); h.Op != frames.OpText || string(p) != want {
			t.Fatalf("got %v %q, want the echo of %q from the first loop", h.Op, p, want)
		}
	}
	r := waitFor(t, second, "the second loop")
	if r.yielded != 0 || !errors.Is(r.err, wsconn.ErrBusyReading) {
		t.Fatalf("second loop yielded %d and reported %v, want nothing and ErrBusyReading", r.yielded, r.err)
	}
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectClose(frames.CloseNormal)
}

// TestPromiseReaderIsBorrowed: a reader from Readers fails with ErrClosed
// once its loop body returned, and what the body left unread is discarded
// but still checked: bad UTF-8 there closes with 1007.
func TestPromiseReaderIsBorrowed(t *testing.T) {
	type result struct {
		first  string
		late   error
		inErr  error
		bodies int
	}
	results := make(chan result, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var r result
		var kept io.Reader
		for _, rd := range in.Readers() {
			r.bodies++
			b := make([]byte, 5)
			n, _ := io.ReadFull(rd, b)
			r.first = string(b[:n])
			kept = rd
		}
		_, r.late = kept.Read(make([]byte, 1))
		r.inErr = in.Err()
		results <- r
		return in.Err()
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("hello"))
	c.frame(frames.OpContinuation, true, []byte(" world \xff")) // unread by the body
	c.expectClose(frames.CloseInvalidPayload)
	r := waitFor(t, results, "the handler")
	if r.bodies != 1 || r.first != "hello" {
		t.Errorf("bodies %d, first read %q", r.bodies, r.first)
	}
	if !errors.Is(r.late, wsconn.ErrClosed) {
		t.Errorf("reader used after its body returned: %v, want ErrClosed", r.late)
	}
	if !errors.Is(r.inErr, messages.ErrInvalidUTF8) || wsconn.CloseStatus(r.inErr) != frames.CloseInvalidPayload {
		t.Errorf("in.Err() = %v, want the 1007 found in the unread rest", r.inErr)
	}
}

// TestPromiseMessagesFinishesWhatFramesLeftHalfRead: a Messages loop that
// follows a Frames loop which broke out mid-message yields the rest of
// that message, then the next ones.
func TestPromiseMessagesFinishesWhatFramesLeftHalfRead(t *testing.T) {
	got := make(chan []string, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var seen []string
		for f := range in.Frames() {
			seen = append(seen, fmt.Sprintf("frame %v %v %s", f.Op, f.Fin, f.Payload))
			break
		}
		for m := range in.Messages(0) {
			seen = append(seen, fmt.Sprintf("message %v %s", m.Kind, m.Payload))
			if len(seen) == 3 {
				break
			}
		}
		got <- seen
		return nil
	})
	c := dialRaw(t, url)
	c.frame(frames.OpText, false, []byte("ab"))
	c.frame(frames.OpContinuation, false, []byte("cd"))
	c.frame(frames.OpContinuation, true, []byte("ef"))
	c.frame(frames.OpBinary, true, []byte("next"))
	want := []string{
		fmt.Sprintf("frame %v false ab", frames.OpText),
		fmt.Sprintf("message %v cdef", messages.KindText),
		fmt.Sprintf("message %v next", messages.KindBinary),
	}
	seen := waitFor(t, got, "the loops")
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", seen, want)
	}
	c.expectClose(frames.CloseNormal)
}

// TestPromiseWriteContextBoundsOnlyTheWait: a write's context bounds its
// wait for a Writer held elsewhere (it returns the context's cause and
// sends nothing), and the connection carries on.
func TestPromiseWriteContextBoundsOnlyTheWait(t *testing.T) {
	slow := errors.New("gave up waiting for the writer")
	waited := make(chan error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		w, err := out.Writer(ctx, messages.KindText)
		if err != nil {
			return err
		}
		_, _ = w.Write([]byte("owned "))
		done := make(chan struct{})
		_ = s.Go(func(ctx context.Context) error {
			defer close(done)
			wctx, cancel := context.WithTimeoutCause(ctx, 50*time.Millisecond, slow)
			defer cancel()
			waited <- out.WriteText(wctx, "impatient")
			return nil
		})
		<-done
		_, _ = w.Write([]byte("message"))
		if err := w.Close(); err != nil {
			return err
		}
		if err := out.WriteText(ctx, "after"); err != nil {
			return err
		}
		return echo(ctx, in, out, s)
	})
	c := dialGorilla(t, url)
	for _, want := range []string{"owned message", "after"} {
		if _, p, err := c.ReadMessage(); err != nil || string(p) != want {
			t.Fatalf("got %q %v, want %q", p, err, want)
		}
	}
	if err := waitFor(t, waited, "the impatient write"); !errors.Is(err, slow) || errors.Is(err, wsconn.ErrClosed) {
		t.Fatalf("write whose context ended while it waited: %v, want its cause", err)
	}
	if err := c.WriteMessage(gorilla.TextMessage, []byte("still open")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "still open" {
		t.Fatalf("got %q %v after the abandoned wait", p, err)
	}
}
