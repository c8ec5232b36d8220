package wsconn_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/wsconn"
)

// TestCornerAfterFuncPanicOnAnEndedConnection: closing.md says "A
// panic in a function given to s.AfterFunc is recovered and logged too".
// That holds when the context has ended already and AfterFunc runs f in
// the calling goroutine, which may be outside the connection (a hub, a
// registry that outlives the handler): the panic does not reach it.
func TestCornerAfterFuncPanicOnAnEndedConnection(t *testing.T) {
	var log testlog.Buffer
	sessions := make(chan *wsconn.Session[struct{}], 1)
	url, _ := testServer(t, &wsconn.Config{Logger: slog.New(slog.NewTextHandler(&log, nil))}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		sessions <- s
		return nil
	})
	c := dialGorilla(t, url)
	s := waitFor(t, sessions, "the handler")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
		t.Fatalf("read: %v, want the 1000 CLOSE", err)
	}
	waitFor(t, s.Context().Done(), "the handler's context to end")

	var got any
	func() {
		defer func() { got = recover() }()
		s.AfterFunc(func() { panic("clean-up boom") })
	}()
	if got != nil {
		t.Fatalf("AfterFunc's panic reached the caller unrecovered: %v", got)
	}
	if !strings.Contains(log.String(), "AfterFunc panicked") {
		t.Fatalf("the panic was not logged; log:\n%s", log.String())
	}
}

// TestCornerGoRacingTheReturnNeverLosesOrLeaksATask: s.Go called from
// a goroutine outside the connection while the handler returns. Every
// call that returned nil ran its task before the connection was over
// (ConnObserver.Closed comes after the tasks); every refused call says
// ErrClosed and its task never runs, not even later.
func TestCornerGoRacingTheReturnNeverLosesOrLeaksATask(t *testing.T) {
	for i := range 15 {
		var accepted, started, finished, refusedRan atomic.Int64
		obs := newEventLog()
		sessions := make(chan *wsconn.Session[struct{}], 1)
		release := make(chan struct{})
		url, _ := testServer(t, &wsconn.Config{Observer: obs}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			sessions <- s
			<-release
			return nil
		})
		c := dialGorilla(t, url)
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		s := waitFor(t, sessions, "the handler")
		var wg sync.WaitGroup
		var refusal error
		wg.Go(func() {
			for {
				var mine atomic.Bool
				err := s.Go(func(ctx context.Context) error {
					if mine.Load() {
						refusedRan.Add(1)
					}
					started.Add(1)
					time.Sleep(time.Duration(i%3) * time.Millisecond)
					finished.Add(1)
					return nil
				})
				if err != nil {
					mine.Store(true)
					refusal = err
					return
				}
				accepted.Add(1)
				time.Sleep(20 * time.Microsecond)
			}
		})
		time.Sleep(time.Duration(i%5) * time.Millisecond)
		close(release)
		wg.Go(func() { _, _, _ = c.ReadMessage() }) // answers the CLOSE
		wg.Wait()
		info := waitFor(t, obs.closed, "the connection to end")
		if got, want := finished.Load(), accepted.Load(); got != want {
			t.Fatalf("run %d: %d tasks finished before the connection was over, %d were accepted", i, got, want)
		}
		if !errors.Is(refusal, wsconn.ErrClosed) {
			t.Fatalf("run %d: refused Go said %v, want ErrClosed", i, refusal)
		}
		if info.Code != frames.CloseNormal {
			t.Fatalf("run %d: closed with %v, want 1000", i, info.Code)
		}
		time.Sleep(5 * time.Millisecond)
		if refusedRan.Load() != 0 || started.Load() != accepted.Load() {
			t.Fatalf("run %d: a refused task ran (started %d, accepted %d)", i, started.Load(), accepted.Load())
		}
		c.Close()
	}
}

// TestCornerTaskPanicAfterTheReturnChangesNoCode: a task that ignores
// its context for a while after the handler returned, then panics. The
// code was fixed by the return (1000) and has gone out; the panic is
// recovered and logged once, the connection still ends, and the process
// goes on.
func TestCornerTaskPanicAfterTheReturnChangesNoCode(t *testing.T) {
	var log testlog.Buffer
	obs := newEventLog()
	url, _ := testServer(t, &wsconn.Config{Observer: obs, Logger: slog.New(slog.NewTextHandler(&log, nil))}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		_ = s.Go(func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(100 * time.Millisecond)
			panic("late boom")
		})
		return nil
	})
	c := dialRaw(t, url)
	c.expectClose(frames.CloseNormal)
	c.frame(frames.OpClose, true, closePayload(frames.CloseNormal, ""))
	c.expectSilentEOF()
	info := waitFor(t, obs.closed, "the connection to end")
	if info.Code != frames.CloseNormal {
		t.Fatalf("CloseInfo code %v, want 1000", info.Code)
	}
	if n := strings.Count(log.String(), "connection task panicked"); n != 1 {
		t.Fatalf("the late panic was logged %d times, want once; log:\n%s", n, log.String())
	}
}

// reviewSCChildEnv makes TestCornerObserverPanicIsContained serve the
// connection itself, in the child process it starts; its value says
// which ConnObserver method panics.
const reviewSCChildEnv = "COLIBRI_REVIEW_SC_OBSERVER_CHILD"

// reviewSCPanicky is a ConnObserver whose method named by which panics.
type reviewSCPanicky struct {
	wsconn.NopObserver
	which string
}

func (o *reviewSCPanicky) ConnOpened(*wsconn.Conn) wsconn.ConnObserver { return o }

func (o *reviewSCPanicky) Closed(wsconn.CloseInfo) {
	if o.which == "Closed" {
		panic("observer boom in Closed")
	}
}

func (o *reviewSCPanicky) PingRTT(time.Duration) {
	if o.which == "PingRTT" {
		panic("observer boom in PingRTT")
	}
}

// TestCornerObserverPanicIsContained: closing.md says "A panic never
// takes the process down: colibri recovers it wherever it happens in the
// connection's goroutines". ConnObserver methods are application code
// run in those goroutines: Closed in the connection's own goroutine after
// the handler's recovery, PingRTT in the background reader. A panic there
// is logged and the process lives on (the child process exits cleanly).
func TestCornerObserverPanicIsContained(t *testing.T) {
	if which := os.Getenv(reviewSCChildEnv); which != "" {
		var log testlog.Buffer
		url, _ := testServer(t, &wsconn.Config{Observer: &reviewSCPanicky{which: which}, PingInterval: 40 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&log, nil))},
			func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				if which == "PingRTT" {
					<-ctx.Done() // write-only: the background reader sees the PONG
				}
				return nil
			})
		c := dialGorilla(t, url)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if which == "PingRTT" {
			go func() { time.Sleep(300 * time.Millisecond); c.Close() }()
		}
		_, _, _ = c.ReadMessage() // answers PINGs and the CLOSE
		time.Sleep(300 * time.Millisecond)
		if !strings.Contains(log.String(), "connection observer panicked") {
			t.Fatalf("the panic in %s was not logged; log:\n%s", which, log.String())
		}
		return
	}
	for _, which := range []string{"Closed", "PingRTT"} {
		t.Run(which, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestCornerObserverPanicIsContained$", "-test.count=1")
			cmd.Env = append(os.Environ(), reviewSCChildEnv+"="+which)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("a panic in ConnObserver.%s took the process down: %v\n%.600s", which, err, out)
			}
		})
	}
}

// TestCornerShutdownOfABusyBodyUnderAFlood: the peer floods data while
// the loop body is busy and ignores its context (a slow consumer), so
// ReadAhead fills and TCP pushes back. A shutdown still sends 1001 at
// once; the loop ends with ErrShutdown once the body returns; the closing
// handshake discards the rest of the flood until the peer's CLOSE, and the
// shutdown is graceful, with no goroutine left.
func TestCornerShutdownOfABusyBodyUnderAFlood(t *testing.T) {
	loopErr := make(chan error, 1)
	inBody := make(chan struct{}, 1)
	url, g := testServer(t, &wsconn.Config{CloseTimeout: 3 * time.Second}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
			select {
			case inBody <- struct{}{}:
			default:
			}
			time.Sleep(300 * time.Millisecond) // busy, context ignored
		}
		loopErr <- in.Err()
		return in.Err()
	})
	c := dialRaw(t, url)
	chunk := maskedFrame(frames.Header{Op: frames.OpBinary, Fin: true, Mask: [4]byte{1, 2, 3, 4}}, make([]byte, 4<<10))
	stop := make(chan struct{})
	flooding := c.writeEvery(time.Millisecond, chunk, stop)
	waitFor(t, inBody, "the busy body")
	time.Sleep(100 * time.Millisecond) // ReadAhead fills behind the body
	reports := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		rep, err := g.Shutdown(ctx)
		if err == nil && (rep.Graceful != 1 || rep.Forced != 0) {
			err = errors.New("not graceful")
		}
		reports <- err
	}()
	c.expectClose(frames.CloseGoingAway)
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("the 1001 took %v: it waited for the busy body", d)
	}
	close(stop)
	<-flooding
	c.frame(frames.OpClose, true, closePayload(frames.CloseGoingAway, ""))
	c.expectSilentEOF()
	if err := waitFor(t, loopErr, "the loop"); !errors.Is(err, wsconn.ErrShutdown) {
		t.Errorf("in.Err() = %v, want ErrShutdown", err)
	}
	if err := waitFor(t, reports, "the shutdown"); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
