package app_test

// Corners of the upgrade through an App, through loopback sockets.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// A shutdown that begins while a decision is still running: the open
// socket gets 1001, and the upgrade whose decision then accepts gets the
// shutdown's 503 with Config.RetryAfter and the documented body, without
// the headers its decision meant for the 101; the shutdown does not wait
// for that decision.
func TestUpgradeCornerShutdownDuringDecision(t *testing.T) {
	deciding, release := make(chan struct{}), make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // a failed test must not leave the decision blocked
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/echo", nil, echo)
	router.WS(r, "/slow", func(*http.Request) (struct{}, router.Decision) {
		close(deciding)
		<-release
		return struct{}{}, router.Upgrade(http.Header{"X-Room": {"lobby"}})
	}, echo)
	a := app.New(r, app.Config{Logger: quiet, RetryAfter: 2500 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base, stop := serveHTTP(a, ln)
	defer stop()

	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	code := make(chan int, 1)
	go func() {
		_, _, err := c.ReadMessage()
		var ce *gorilla.CloseError
		if errors.As(err, &ce) {
			code <- ce.Code
		} else {
			code <- -1
		}
	}()

	type answer struct {
		resp *http.Response
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, base+"/slow", nil)
		req.Header = http.Header{
			"Upgrade":               {"websocket"},
			"Connection":            {"Upgrade"},
			"Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- answer{resp: resp, body: string(b)}
	}()
	select {
	case <-deciding:
	case <-time.After(5 * time.Second):
		t.Fatal("the decision did not run")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := a.Shutdown(ctx)
	if err != nil || rep.Graceful != 1 || rep.Forced != 0 {
		t.Errorf("Shutdown: %+v %v, want the open socket graceful", rep, err)
	}
	if got := <-code; got != gorilla.CloseGoingAway {
		t.Errorf("the open socket got %d, want 1001", got)
	}
	releaseOnce()
	var ans answer
	select {
	case ans = <-answered:
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to the upgrade decided during the shutdown")
	}
	if ans.err != nil {
		t.Fatal(ans.err)
	}
	if ans.resp.StatusCode != http.StatusServiceUnavailable || ans.body != "server is shutting down\n" || ans.resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("upgrade decided during the shutdown: %d %q Retry-After %q", ans.resp.StatusCode, ans.body, ans.resp.Header.Get("Retry-After"))
	}
	if v, ok := ans.resp.Header["X-Room"]; ok {
		t.Errorf("the 503 carries the decision's X-Room %q", v)
	}
	if n := a.Connections(); n != 0 {
		t.Errorf("Connections %d after the shutdown", n)
	}
}
