package router_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// TestCornerShutdownReportOfAFinishedHandshakeWhoseHandlerRunsOn: a handler
// that ignores its context after its loop ended keeps running past the
// shutdown's deadline, while its peer answers the 1001 at once. On the
// wire both CLOSE frames are exchanged well before the deadline (the
// server keeps the TCP connection until the handler returns or the
// deadline). ShutdownReport counts it Forced: "still held at the
// deadline ... (their handler still running ...)".
func TestCornerShutdownReportOfAFinishedHandshakeWhoseHandlerRunsOn(t *testing.T) {
	release := make(chan struct{})
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/stay", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		<-release // ignores its context
		return nil
	})
	base := serve(t, r)
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before serve's shutdown
	c, _, err := dial(t, wsURL(base, "/stay"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Connections(); n != 1 {
		t.Fatalf("Connections = %d, want 1", n)
	}
	const grace = 400 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	type result struct {
		rep router.ShutdownReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := r.Shutdown(ctx)
		done <- result{rep, err}
	}()
	// gorilla answers the server's CLOSE with its own.
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, _, rerr := c.ReadMessage()
	if !gorilla.IsCloseError(rerr, gorilla.CloseGoingAway) {
		t.Fatalf("client read %v, want the server's 1001", rerr)
	}
	// ReadMessage returned after gorilla wrote its CLOSE reply: the
	// closing handshake is complete on the client's side.
	answered := time.Since(start)
	if answered >= grace/2 {
		t.Fatalf("the client answered the 1001 only %v after the shutdown began (deadline %v)", answered, grace)
	}
	// The server holds the TCP connection until the deadline (its
	// handler still runs), then closes it.
	_, _ = io.Copy(io.Discard, c.NetConn())
	<-ctx.Done()
	free()
	res := <-done
	if res.err != nil && !errors.Is(res.err, router.ErrShutdownIncomplete) {
		t.Fatal(res.err)
	}
	if res.rep != (router.ShutdownReport{Forced: 1}) {
		t.Errorf("report %+v, want Forced 1: the handler still ran at the deadline", res.rep)
	}
}
