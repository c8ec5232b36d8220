package router_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// reviewCBOpenPanics is an Observer whose ConnOpened panics: application
// code (an OpenTelemetry meter, a map without its lock) that colibri calls
// on the request's goroutine after it hijacked the connection.
type reviewCBOpenPanics struct{ wsconn.NopObserver }

func (reviewCBOpenPanics) ConnOpened(*wsconn.Conn) wsconn.ConnObserver {
	panic("observer boom in ConnOpened")
}

// reviewCBServe serves r on a loopback port with net/http's panic log
// silenced, and closes it (without Router.Shutdown) at cleanup.
func reviewCBServe(t *testing.T, r *router.Router) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(r)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestCallbackConnOpenedPanicReleasesTheConnection: Observer.ConnOpened
// runs in wsconn.Start's begin, on the request's goroutine, after the
// handshake hijacked the connection and the connection joined its group,
// where net/http's recover would leave the hijacked connection hanging,
// its place never given back (Connections stays up, so MaxConnections
// eventually refuses every upgrade) and Shutdown forced. colibri recovers
// the panic and serves the connection without an observer; once it
// closes, its place is given back.
func TestCallbackConnOpenedPanicReleasesTheConnection(t *testing.T) {
	r := router.New(router.WithConfig(quiet), router.WithObserver(reviewCBOpenPanics{}))
	router.WS(r, "/ws", nil, echo[struct{}])
	base := reviewCBServe(t, r)

	d := gorilla.Dialer{HandshakeTimeout: time.Second}
	c, _, err := d.Dial(wsURL(base, "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The connection is served, unobserved.
	_ = c.WriteMessage(gorilla.TextMessage, []byte("hi"))
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, p, err := c.ReadMessage()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("after the 101, the client was left hanging: nobody serves or closes the hijacked connection")
	}
	if err != nil || string(p) != "hi" {
		t.Fatalf("got %q, %v; want the echo", p, err)
	}
	_ = c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""))
	for err == nil {
		_, _, err = c.ReadMessage()
	}
	c.Close()

	deadline := time.Now().Add(time.Second)
	for r.Connections() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := r.Connections(); n != 0 {
		t.Errorf("Connections = %d after the connection's ConnOpened panicked, want 0", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	rep, err := r.Shutdown(ctx)
	if err != nil || rep.Forced != 0 {
		t.Errorf("Shutdown = %+v, %v; want nothing forced and no error", rep, err)
	}
}

// reviewCBUpgradedPanics is an Observer whose Upgraded panics.
type reviewCBUpgradedPanics struct{ wsconn.NopObserver }

func (reviewCBUpgradedPanics) Upgraded(*http.Request, wsconn.UpgradeResult) {
	panic("observer boom in Upgraded")
}

// TestCallbackUpgradedPanicAfterThe101: Observer.Upgraded runs on the
// request's goroutine after the 101 was written and the connection handed
// over (wsconn.Start), so net/http recovers its panic and, the connection
// being hijacked, closes nothing: the WebSocket is served as if nothing
// happened and gives its place back when it ends. A refusal, written
// before Upgraded runs but still in net/http's buffer, is lost with the
// panicking request: the client sees its connection closed, at once.
func TestCallbackUpgradedPanicAfterThe101(t *testing.T) {
	r := router.New(router.WithConfig(quiet), router.WithObserver(reviewCBUpgradedPanics{}))
	router.WS(r, "/ws", func(req *http.Request) (struct{}, router.Decision) {
		if req.URL.Query().Has("no") {
			return struct{}{}, router.Reject(http.StatusTeapot, nil, "no")
		}
		return struct{}{}, router.Upgrade(nil)
	}, echo[struct{}])
	base := reviewCBServe(t, r)

	d := gorilla.Dialer{HandshakeTimeout: time.Second}
	// The refusal is only buffered when Upgraded panics, and net/http
	// drops a panicking handler's buffered response: the client sees the
	// connection closed rather than its 418, quickly, and no upgrade.
	if c, resp, err := d.Dial(wsURL(base, "/ws?no"), nil); err == nil {
		c.Close()
		t.Fatal("upgraded a rejected request")
	} else if resp != nil && resp.StatusCode != http.StatusTeapot {
		t.Fatalf("refused upgrade: %v %v, want 418 or the connection closed", resp, err)
	} else if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("refused upgrade left hanging: %v", err)
	}
	c, _, err := d.Dial(wsURL(base, "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if err := c.WriteMessage(gorilla.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
		t.Fatalf("echo after Upgraded panicked: %q %v", p, err)
	}
	_ = c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""))
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
		t.Fatalf("closing: %v, want the echoed 1000", err)
	}
	deadline := time.Now().Add(time.Second)
	for r.Connections() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if rep, err := r.Shutdown(ctx); err != nil || rep != (router.ShutdownReport{}) {
		t.Errorf("Shutdown = %+v, %v; want nothing left to close", rep, err)
	}
}
