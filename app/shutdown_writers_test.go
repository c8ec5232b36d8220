package app_test

// Review of graceful shutdown: writers racing it, checked message by
// message on the wire.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// reviewSDServe serves r with an App on a loopback port whose accepted
// sockets buffer little of what they send, so that what is in flight when
// the shutdown begins stays small.
func reviewSDServe(t *testing.T, r *router.Router) (*app.App, string) {
	t.Helper()
	a := app.New(r, app.Config{Logger: quiet, NoSignals: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base, _ := serveApp(t, a, smallSendBuffers{ln})
	return a, base
}

// reviewSDRefusal checks that a refused write's error is the documented
// one: ErrClosed wrapping ErrShutdown.
func reviewSDRefusal(err error) error {
	if errors.Is(err, wsconn.ErrClosed) && errors.Is(err, wsconn.ErrShutdown) {
		return nil
	}
	return fmt.Errorf("refused write: %v, want ErrClosed and ErrShutdown", err)
}

// Goroutines outside the connection (neither the handler nor its tasks),
// holding its Outbound, write continuously with WriteText, WriteMessage,
// WritePrepared and WritePreparedBatch while the App shuts down; the
// handler returns as soon as its context ends. Each client receives
// exactly the messages whose write returned nil, in order per writer,
// then 1001, then nothing: after its answer the server hangs up. Every
// refused write, before and after the connection is over, fails with
// ErrClosed wrapping ErrShutdown.
func TestShutdownCornerOutsideWritersLoseNothing(t *testing.T) {
	const clients, writers = 3, 4
	type conn struct {
		i        int
		out      *wsconn.Outbound
		done     <-chan struct{}
		accepted [writers]int
	}
	opened := make(chan *conn, clients)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	decide := func(req *http.Request) (int, router.Decision) {
		i, err := strconv.Atoi(req.URL.Query().Get("i"))
		if err != nil || i < 0 || i >= clients {
			return 0, router.Reject(http.StatusBadRequest, nil, "client out of range")
		}
		return i, router.Upgrade(nil)
	}
	router.WS(r, "/out", decide, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[int]) error {
		done := make(chan struct{})
		s.AfterFunc(func() { close(done) })
		opened <- &conn{i: s.Value, out: s.Outbound(), done: done}
		<-ctx.Done()
		return context.Cause(ctx)
	})
	a, base := reviewSDServe(t, r)
	host := hostOf(base)

	var peers []*soakConn
	for i := range clients {
		c, err := soakDial(host, "/out?i="+strconv.Itoa(i), 16<<10)
		if err != nil {
			t.Fatal(err)
		}
		defer c.nc.Close()
		peers = append(peers, c)
	}
	conns := make([]*conn, clients)
	for range clients {
		cn := advWait(t, opened, "a handler")
		conns[cn.i] = cn
	}

	var wg sync.WaitGroup
	errs := make(chan error, clients*writers)
	stop := make(chan struct{})
	for _, cn := range conns {
		for w := range writers {
			wg.Go(func() {
				ctx := context.Background()
				refused := 0
				for seq := 0; ; {
					msg := fmt.Sprintf("%d %d", w, seq)
					var err error
					sent := 1
					switch w {
					case 0:
						err = cn.out.WriteText(ctx, msg)
					case 1:
						err = cn.out.WriteMessage(ctx, messages.Message{Kind: messages.KindBinary, Payload: []byte(msg)})
					case 2:
						err = cn.out.WritePrepared(ctx, wsconn.Prepare(messages.Message{Kind: messages.KindText, Payload: []byte(msg)}))
					case 3:
						ps := make([]*wsconn.Prepared, 70) // crosses a writev batch
						for i := range ps {
							ps[i] = wsconn.Prepare(messages.Message{Kind: messages.KindText, Payload: fmt.Appendf(nil, "%d %d", w, seq+i)})
						}
						sent, err = cn.out.WritePreparedBatch(ctx, ps)
						if err == nil && sent != len(ps) {
							errs <- fmt.Errorf("WritePreparedBatch: %d of %d and no error", sent, len(ps))
							return
						}
					}
					if err == nil {
						seq += sent
						cn.accepted[w] = seq
						continue
					}
					if w == 3 {
						seq += sent
						cn.accepted[w] = seq
					}
					if e := reviewSDRefusal(err); e != nil {
						errs <- e
						return
					}
					// Keep trying until the connection is over, and a few
					// times more.
					select {
					case <-cn.done:
						refused++
					case <-stop:
						return
					default:
					}
					if refused > 20 {
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
	}
	defer close(stop)

	type got struct {
		next  [writers]int
		fault error
	}
	results := make([]got, clients)
	var rwg sync.WaitGroup
	warm := make(chan struct{}, clients)
	for i, c := range peers {
		rwg.Go(func() {
			g := &results[i]
			warmed := false
			defer func() {
				if !warmed {
					warm <- struct{}{}
				}
			}()
			for {
				m, err := c.next()
				if err != nil {
					g.fault = err
					return
				}
				if m.op == frames.OpClose {
					if m.code != frames.CloseGoingAway || m.reason != "server shutting down" {
						g.fault = fmt.Errorf("CLOSE %d %q", m.code, m.reason)
						return
					}
					if err := c.send(frames.OpClose, []byte{0x03, 0xe9}); err != nil {
						g.fault = err
						return
					}
					n, err := io.Copy(io.Discard, c.br)
					if n != 0 || err != nil {
						g.fault = fmt.Errorf("after the CLOSE: %d bytes, %v", n, err)
					}
					return
				}
				var w, seq int
				if _, err := fmt.Sscanf(string(m.payload), "%d %d", &w, &seq); err != nil || w < 0 || w >= writers || seq != g.next[w] {
					g.fault = fmt.Errorf("message %q after %v", m.payload, g.next)
					return
				}
				g.next[w]++
				if !warmed && g.next[0] > 20 && g.next[3] > 70 {
					warmed = true
					warm <- struct{}{}
				}
			}
		})
	}
	for range clients {
		advWait(t, warm, "traffic")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	rep, err := a.Shutdown(ctx)
	if err != nil || rep != (router.ShutdownReport{Graceful: clients}) {
		t.Fatalf("Shutdown: %+v %v", rep, err)
	}
	rwg.Wait()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for i, g := range results {
		if g.fault != nil {
			t.Errorf("client %d: %v", i, g.fault)
		}
		if g.next != conns[i].accepted {
			t.Errorf("client %d received %v, writes accepted %v", i, g.next, conns[i].accepted)
		}
	}
}

// WritePreparedBatch from tasks racing a shutdown, on connections that
// encode for themselves (permessage-deflate with context takeover, so no
// shared frame) and on connections that share frames (writev): n counts
// exactly the messages the client (coder/websocket) receives before 1001,
// and a refused batch fails with ErrClosed wrapping ErrShutdown.
func TestShutdownCornerPreparedBatchesRacingShutdown(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			const writers, batch = 3, 100
			var mu sync.Mutex
			accepted := [writers]int{}
			var failures []error
			pad := ""
			if deflate {
				pad = strings.Repeat("x", 300) // above the compression threshold
			}
			r := router.New(router.WithConfig(wsconn.Config{Logger: quiet,
				Compression: wsconn.Compression{Enabled: deflate, ContextTakeover: true}}))
			router.WS(r, "/batch", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				for w := range writers {
					s.Go(func(ctx context.Context) error {
						for base := 0; ; {
							ps := make([]*wsconn.Prepared, batch)
							for i := range ps {
								ps[i] = wsconn.Prepare(messages.Message{Kind: messages.KindText, Payload: fmt.Appendf(nil, "%d %d %s", w, base+i, pad)})
							}
							n, err := out.WritePreparedBatch(ctx, ps)
							base += n
							mu.Lock()
							accepted[w] = base
							if err == nil && n != batch {
								failures = append(failures, fmt.Errorf("%d of %d and no error", n, batch))
							}
							if err != nil {
								if e := reviewSDRefusal(err); e != nil {
									failures = append(failures, e)
								}
							}
							mu.Unlock()
							if err != nil {
								return err
							}
						}
					})
				}
				<-ctx.Done()
				return context.Cause(ctx)
			})
			a, base := reviewSDServe(t, r)
			dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer dcancel()
			mode := coder.CompressionDisabled
			if deflate {
				mode = coder.CompressionContextTakeover
			}
			c, resp, err := coder.Dial(dctx, ws(base, "/batch"), &coder.DialOptions{CompressionMode: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if got := resp.Header.Get("Sec-WebSocket-Extensions") != ""; got != deflate {
				t.Fatalf("extensions %q", resp.Header.Get("Sec-WebSocket-Extensions"))
			}
			var next [writers]int
			readErr := make(chan error, 1)
			warm := make(chan struct{})
			go func() {
				warmed := false
				for {
					_, p, err := c.Read(dctx)
					if err != nil {
						if !warmed {
							close(warm)
						}
						readErr <- err
						return
					}
					var w, seq int
					if _, err := fmt.Sscanf(string(p), "%d %d", &w, &seq); err != nil || w < 0 || w >= writers || seq != next[w] {
						if !warmed {
							close(warm)
						}
						readErr <- fmt.Errorf("message %.20q after %v", p, next)
						return
					}
					next[w]++
					if !warmed && next[0]+next[1]+next[2] > batch {
						warmed = true
						close(warm)
					}
				}
			}()
			<-warm
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			rep, err := a.Shutdown(ctx)
			if err != nil || rep != (router.ShutdownReport{Graceful: 1}) {
				t.Fatalf("Shutdown: %+v %v", rep, err)
			}
			if err := <-readErr; coder.CloseStatus(err) != coder.StatusGoingAway {
				t.Fatalf("client: %v, want 1001", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, f := range failures {
				t.Error(f)
			}
			if next != accepted {
				t.Fatalf("received %v, batches reported %v", next, accepted)
			}
		})
	}
}

// closing.md, Shutdown: "A message streamed through a Writer counts once
// its Close returned nil: a Writer that a task or an outside goroutine
// still holds when the handler returns is abandoned, the 1001 goes out
// between its fragments, and its later writes fail." Here the handler
// returns when its context ends (the usual handler) while its task is
// half-way through a message.
func TestShutdownCornerTaskWriterAtShutdownIsCut(t *testing.T) {
	half := make(chan struct{})
	finished := make(chan error, 1)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet, FragmentSize: 16}))
	router.WS(r, "/w", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		_ = s.Go(func(ctx context.Context) error {
			w, err := out.Writer(ctx, messages.KindText)
			if err != nil {
				finished <- err
				return nil
			}
			_, err = w.Write([]byte(strings.Repeat("a", 32))) // two frames out
			close(half)
			<-ctx.Done() // the shutdown began; finish the message
			if err == nil {
				_, err = w.Write([]byte(strings.Repeat("b", 32)))
			}
			finished <- errors.Join(err, w.Close())
			return nil
		})
		<-ctx.Done()
		return context.Cause(ctx)
	})
	a, base, _ := start(t, r, app.Config{})
	c, err := soakDial(hostOf(base), "/w", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.nc.Close()
	advWait(t, half, "the first half")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	go func() { _, _ = a.Shutdown(ctx) }()
	werr := advWait(t, finished, "the task")
	if werr == nil {
		// The task won the race with the handler's return: its message
		// is whole, and the 1001 follows it.
		m, err := c.next()
		if err != nil || string(m.payload) != strings.Repeat("a", 32)+strings.Repeat("b", 32) {
			t.Fatalf("client read %q, %v; want the whole message, as Close returned nil", m.payload, err)
		}
		if err := c.expectClose(frames.CloseGoingAway); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !errors.Is(werr, wsconn.ErrClosed) || !errors.Is(werr, wsconn.ErrShutdown) {
		t.Fatalf("the task's Writer: %v, want ErrClosed and ErrShutdown", werr)
	}
	// The first half's two fragments, then the 1001 amid the message.
	for range 2 {
		if h, _, err := c.read(); err != nil || h.Op == frames.OpClose || h.Fin {
			t.Fatalf("got %v (fin %v), %v; want a fragment of the first half", h.Op, h.Fin, err)
		}
	}
	if h, p, err := c.read(); err != nil || h.Op != frames.OpClose {
		t.Fatalf("got %v %q, %v; want the 1001 between the fragments", h.Op, p, err)
	}
}
