package router_test

// Claims of the router package's doc comments that no other test pins,
// checked through loopback sockets with gorilla/websocket and raw
// HTTP/1.1 bytes.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

const gdrGuard = 10 * time.Second

// gdrWait returns the next value of ch, or fails the test after gdrGuard.
func gdrWait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(gdrGuard):
		t.Fatalf("no %s within %v", what, gdrGuard)
		panic("unreachable")
	}
}

// gdrResults is a wsconn.Observer that hands every upgrade result over.
type gdrResults chan wsconn.UpgradeResult

func (o gdrResults) Upgraded(_ *http.Request, u wsconn.UpgradeResult) { o <- u }
func (o gdrResults) ConnOpened(*wsconn.Conn) wsconn.ConnObserver      { return wsconn.NopObserver{} }

// gdrRawUpgrade sends an upgrade request for path to addr on a new
// connection and returns the response, with its body unless it is a 101.
func gdrRawUpgrade(t *testing.T, addr, path string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, gdrGuard)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(gdrGuard))
	_, err = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, ""
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// Connections and ShutdownReport count places: connections, and upgrades
// their route accepted whose handshake has not finished. One connection
// is open; a second upgrade is accepted by its route, and middleware that
// runs after the decision then turns it down with 403, as it may (the
// client never gets a WebSocket). While that middleware runs, the router
// counts two, and a shutdown taken meanwhile reports both as graceful:
// the second place was given back before the deadline.
func TestGodocConnectionsCountAcceptedUpgradesToo(t *testing.T) {
	gate, decided := make(chan struct{}), make(chan struct{}, 1)
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	r := router.New(router.WithConfig(quiet))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req)
			if req.URL.Path == "/turned-down" {
				decided <- struct{}{}
				<-gate
				http.Error(w, "turned down after the decision", http.StatusForbidden)
			}
		})
	})
	router.WS(r, "/live", nil, echo[struct{}])
	router.WS(r, "/turned-down", nil, echo[struct{}])
	base := serve(t, r)

	live, _, err := dial(t, wsURL(base, "/live"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := live.WriteMessage(gorilla.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := live.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	refused := make(chan int, 1)
	go func() {
		c, resp, _ := gorilla.DefaultDialer.Dial(wsURL(base, "/turned-down"), nil)
		if c != nil {
			c.Close()
		}
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		refused <- status
	}()
	gdrWait(t, decided, "decision")
	connections := r.Connections()

	type shutdown struct {
		rep router.ShutdownReport
		err error
	}
	done := make(chan shutdown, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), gdrGuard)
		defer cancel()
		rep, err := r.Shutdown(ctx)
		done <- shutdown{rep, err}
	}()
	// The live connection's 1001 shows that the shutdown has counted what
	// was open; only then may the refusal give its place back.
	_, _, err = live.ReadMessage()
	if ce, ok := errors.AsType[*gorilla.CloseError](err); !ok || ce.Code != gorilla.CloseGoingAway {
		t.Fatalf("live connection: %v, want 1001", err)
	}
	close(gate)
	if status := gdrWait(t, refused, "refusal"); status != http.StatusForbidden {
		t.Fatalf("upgrade turned down after the decision: %d, want 403", status)
	}
	got := gdrWait(t, done, "Shutdown")
	if got.err != nil {
		t.Fatal(got.err)
	}
	if connections != 2 {
		t.Errorf("Connections() = %d with one WebSocket open and one accepted upgrade pending in middleware, want 2", connections)
	}
	if got.rep != (router.ShutdownReport{Graceful: 2}) {
		t.Errorf("ShutdownReport %+v, want both places given back before the deadline", got.rep)
	}
}

// plainWriter hides every optional interface of the ResponseWriter it
// wraps, as a wrapper in front of the router without Unwrap does.
type gdrPlainWriter struct{ http.ResponseWriter }

// WithObserver: the router's observer "is told how every upgrade request
// the router serves ended"; wsconn.UpgradeResult.Err "is why the
// handshake failed after the route decided to upgrade ... nil otherwise".
// Behind a ResponseWriter that cannot be hijacked, the route accepts and
// the handshake then fails with 500; the observer must get that failure
// (outcome "failed" in observe), with handshake.Error's cause,
// http.ErrNotSupported.
func TestGodocObserverGetsTheErrorOfAHandshakeThatCannotHijack(t *testing.T) {
	results := make(gdrResults, 4)
	r := router.New(router.WithConfig(quiet), router.WithObserver(results))
	router.WS(r, "/ws", nil, echo[struct{}])
	base := serveWith(t, r, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.ServeHTTP(gdrPlainWriter{w}, req)
	}))
	resp, body := gdrRawUpgrade(t, strings.TrimPrefix(base, "http://"), "/ws")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("upgrade behind a writer that cannot hijack: %d %q, want 500", resp.StatusCode, body)
	}
	u := gdrWait(t, results, "upgrade result")
	if u.Accepted || u.Status != http.StatusInternalServerError {
		t.Errorf("result %+v, want a 500 not accepted", u)
	}
	if !errors.Is(u.Err, http.ErrNotSupported) {
		t.Errorf("result Err = %v, want the failed hijack (http.ErrNotSupported)", u.Err)
	}
}
