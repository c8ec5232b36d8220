package app_test

// Review of graceful shutdown: what ShutdownReport counts, checked
// against what the clients saw on the wire.

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// reviewSDBig is what /big writes, whatever its context says: far more
// than a non-reading client and the small socket buffers hold.
var reviewSDBig = make([]byte, 4<<20)

// reviewSDApp serves /echo and /big on a loopback port whose accepted
// sockets buffer little of what they send. entered gets a value each time
// /big's handler begins its write.
func reviewSDApp(t *testing.T, cfg wsconn.Config, acfg app.Config) (*app.App, string, chan struct{}) {
	t.Helper()
	cfg.Logger = quiet
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 20 * time.Second
	}
	entered := make(chan struct{}, 4096)
	r := router.New(router.WithConfig(cfg))
	router.WS(r, "/echo", nil, echo)
	router.WS(r, "/big", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		entered <- struct{}{}
		_ = out.WriteBinary(ctx, reviewSDBig)
		return nil
	})
	acfg.Logger, acfg.NoSignals = quiet, true
	a := app.New(r, acfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base, _ := serveApp(t, a, smallSendBuffers{ln})
	return a, hostOf(base), entered
}

// reviewSDStuck dials /big with a small receive buffer and returns once
// the server's large message has begun to arrive (so that the message,
// and the CLOSE behind it, are stuck on the socket).
func reviewSDStuck(t *testing.T, host string) *soakConn {
	t.Helper()
	c, err := soakDial(host, "/big", 4<<10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.nc.Close() })
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.br.Peek(2); err != nil {
		t.Fatalf("waiting for the large message: %v", err)
	}
	return c
}

// reviewSDSawClose drains c and reports whether a CLOSE frame was among
// what it read.
func reviewSDSawClose(c *soakConn) bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		h, _, err := c.read()
		if err != nil {
			return false
		}
		if h.Op == frames.OpClose {
			return true
		}
	}
}

// Two Shutdown calls at once, one with a short deadline and one with a
// long one, over a connection whose CLOSE is stuck behind a message the
// client does not read. The short call forces it; the client never sees a
// CLOSE. The long call, which returns once the forced connection is gone,
// must not count it as Graceful ("finished their closing handshake").
func TestShutdownCornerConcurrentShutdownsAgreeOnForced(t *testing.T) {
	a, host, _ := reviewSDApp(t, wsconn.Config{}, app.Config{})
	c := reviewSDStuck(t, host)
	advWaitConns(t, a, 1)

	type result struct {
		rep router.ShutdownReport
		err error
	}
	short, long := make(chan result, 1), make(chan result, 1)
	sctx, scancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer scancel()
	lctx, lcancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer lcancel()
	go func() { rep, err := a.Shutdown(lctx); long <- result{rep, err} }()
	go func() { rep, err := a.Shutdown(sctx); short <- result{rep, err} }()
	s := advWait(t, short, "the short Shutdown")
	l := advWait(t, long, "the long Shutdown")
	if s.err != nil || s.rep != (router.ShutdownReport{Forced: 1}) {
		t.Fatalf("short Shutdown: %+v %v, want 1 forced", s.rep, s.err)
	}
	if reviewSDSawClose(c) {
		t.Fatal("the forced client saw a CLOSE")
	}
	if l.err != nil || l.rep.Graceful != 0 {
		t.Fatalf("long Shutdown: %+v %v; the only connection was forced (its client saw no CLOSE), yet it is counted graceful", l.rep, l.err)
	}
}

// The same after a Shutdown that forced a connection and returned
// ErrShutdownIncomplete: a later Shutdown that waits for the stuck handler
// reports the forced connection as Graceful.
func TestShutdownCornerShutdownAfterIncompleteCountsForcedAsGraceful(t *testing.T) {
	release := make(chan struct{})
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/stuck", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		<-release // ignores its context
		return nil
	})
	a, base, _ := start(t, r, app.Config{})
	defer close(release)
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/stuck"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	advWaitConns(t, a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if rep, err := a.Shutdown(ctx); !errors.Is(err, router.ErrShutdownIncomplete) || rep != (router.ShutdownReport{Forced: 1}) {
		t.Fatalf("first Shutdown: %+v %v", rep, err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		release <- struct{}{}
	}()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	rep, err := a.Shutdown(ctx2)
	if err != nil || rep.Graceful != 0 {
		t.Fatalf("second Shutdown: %+v %v; its one connection had been forced by the first", rep, err)
	}
}

// ShutdownReport.Graceful: connections over before the deadline, among
// them a peer that reads the 1001 and never answers, given up on after
// CloseTimeout, when that comes before the shutdown's deadline.
func TestShutdownCornerSilentPeerGivenUpBeforeTheDeadlineIsGraceful(t *testing.T) {
	a, host, _ := reviewSDApp(t, wsconn.Config{CloseTimeout: 150 * time.Millisecond}, app.Config{})
	c, err := soakDial(host, "/echo", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.nc.Close()
	advWaitConns(t, a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rep, err := a.Shutdown(ctx)
	// The client read nothing and answered nothing so far; now it reads
	// the 1001 that did go out, and the hang-up.
	if cerr := c.expectClose(frames.CloseGoingAway); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil || rep.Graceful != 1 || rep.Forced != 0 {
		t.Fatalf("Shutdown: %+v %v; want the silent peer, given up on before the deadline, counted Graceful", rep, err)
	}
}

// Thousands of connections shut down at once with a deadline: most have
// clients that answer the 1001, some have a large message stuck on a
// client that does not read. The report's counts are what the clients
// saw: every answering client got 1001 and a hang-up, no stuck client
// got a CLOSE.
func TestShutdownCornerManyConnectionsReportMatchesTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("many connections")
	}
	const stuck = 100
	limit := raiseFileLimit(t, 19000)
	answering := min(2000, (limit-600)/2-stuck)
	if answering < 500 {
		t.Skipf("open-file limit %d too low", limit)
	}
	a, host, _ := reviewSDApp(t, wsconn.Config{}, app.Config{})

	var stuckConns []*soakConn
	for range stuck {
		stuckConns = append(stuckConns, reviewSDStuck(t, host))
	}
	conns := make([]*gorilla.Conn, answering)
	var dialErr atomic.Value
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= answering {
					return
				}
				c, _, err := gorilla.DefaultDialer.Dial("ws://"+host+"/echo", nil)
				if err != nil {
					dialErr.Store(err)
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := dialErr.Load(); err != nil {
		t.Fatalf("dial: %v", err)
	}
	advWaitConns(t, a, answering+stuck)

	var sawGoingAway, hungUp atomic.Int64
	var bad atomic.Value
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _, err := c.ReadMessage() // gorilla answers the CLOSE
			if !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
				bad.Store(err)
				return
			}
			sawGoingAway.Add(1)
			if _, err := c.UnderlyingConn().Read(make([]byte, 1)); err == nil {
				bad.Store(errors.New("bytes after the CLOSE"))
				return
			} else if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				bad.Store(errors.New("the server did not hang up"))
				return
			}
			hungUp.Add(1)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rep, err := a.Shutdown(ctx)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatalf("an answering client: %v", v)
	}
	sawClose := 0
	for _, c := range stuckConns {
		if reviewSDSawClose(c) {
			sawClose++
		}
	}
	if err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if rep.Graceful != int(hungUp.Load()) || rep.Forced != stuck-sawClose || sawClose != 0 || int(sawGoingAway.Load()) != answering {
		t.Fatalf("report %+v; clients: %d of %d answering saw 1001 and a hang-up, %d of %d stuck saw a CLOSE",
			rep, hungUp.Load(), answering, sawClose, stuck)
	}
	if n := a.Connections(); n != 0 {
		t.Fatalf("Connections() = %d after Shutdown", n)
	}
}
