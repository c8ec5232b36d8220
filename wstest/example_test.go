package wstest_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// greet is the handler under test in the examples: it greets, then echoes.
func greet(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
	if err := out.WriteText(ctx, "welcome, "+s.Value); err != nil {
		return err
	}
	for m := range in.Messages(0) {
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

// A whole test of a WebSocket route of a router, in memory: no port, no
// socket. In a real test t is the test's own; the body is the same.
// (Compiled, not run: it needs a test's t.)
func ExampleNewMemoryServer() {
	var t *testing.T // func TestGreet(t *testing.T) {

	r := router.New()
	router.WS(r, "/ws/greet/{name}", func(req *http.Request) (string, router.Decision) {
		return req.PathValue("name"), router.Upgrade(nil)
	}, greet)

	srv := wstest.NewMemoryServer(t, r)
	c := srv.Dial(t, "/ws/greet/ann", nil)
	c.ExpectText("welcome, ann")
	c.SendText("ping?")
	c.ExpectText("ping?")
	c.Close()
}

// Sending what no browser would, and checking how the server fails the
// connection. (Compiled, not run: it needs a test's t.)
func ExampleClient_SendFrame() {
	var t *testing.T // func TestRejectsBadUTF8(t *testing.T) {

	srv := wstest.NewMemoryServer(t, wstest.Handler("ann", greet, nil))
	c := srv.Dial(t, "/ws", nil)
	c.ExpectText("welcome, ann")
	c.SendFrame(frames.Text([]byte{'b', 'a', 'd', 0xff}))
	c.ExpectClose(frames.CloseInvalidPayload, "invalid UTF-8 in text message")

	c = srv.Dial(t, "/ws", nil)
	c.SendFrame(frames.Ping(make([]byte, 126))) // control frames carry at most 125 bytes
	c.ExpectText("welcome, ann")
	c.ExpectClose(frames.CloseProtocolError, "control frame payload over 125 bytes")
}

// A keep-alive test on a fake clock: thirty seconds of silence, a PING
// left unanswered, twenty more seconds, and the server closes with 1001,
// all in a few milliseconds. (Compiled, not run: it needs a test's t.)
func ExampleClock_keepAlive() {
	var t *testing.T // func TestPingTimeout(t *testing.T) {

	clk := wstest.NewClock()
	cfg := &wsconn.Config{Clock: clk, PingInterval: 30 * time.Second, PongTimeout: 20 * time.Second}
	srv := wstest.NewMemoryServer(t, wstest.Handler("ann", greet, &wstest.HandlerOptions{Config: cfg}))
	c := srv.Dial(t, "/ws", nil)
	c.ExpectText("welcome, ann")
	c.WaitServerReading()

	clk.Advance(30 * time.Second)
	c.ExpectPing() // not answered
	c.WaitServerReading()
	clk.Advance(20 * time.Second)
	c.ExpectClose(frames.CloseGoingAway, "ping timeout")
}

// An in-memory server also serves colibri's client, or any client that
// takes a dial function. (Compiled, not run: it needs a test's t.)
func ExampleServer_NetDial() {
	var t *testing.T // func TestWithTheRealClient(t *testing.T) {

	srv := wstest.NewMemoryServer(t, wstest.Handler("ann", greet, nil))
	err := wsclient.Run(t.Context(), srv.URL()+"/ws", func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[*http.Response]) error {
		for m := range in.Messages(0) {
			if m.Text() != "welcome, ann" {
				return fmt.Errorf("greeting %q", m.Payload)
			}
			return nil
		}
		return in.Err()
	}, &wsclient.Options{NetDial: srv.NetDial})
	if err != nil {
		t.Fatal(err)
	}
}

// Handler serves a wsconn handler without a router, here with httptest.
func ExampleHandler() {
	srv := httptest.NewServer(wstest.Handler("ann", greet, nil))
	defer srv.Close()

	err := wsclient.Run(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[*http.Response]) error {
		for m := range in.Messages(0) {
			fmt.Println(m.Text())
			break
		}
		return nil
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	// Output: welcome, ann
}

// The fake clock fires timers in order when advanced, with Now reading
// each timer's due time, and only then.
func ExampleClock() {
	clk := wstest.NewClock()
	start := clk.Now()
	for _, d := range []time.Duration{3 * time.Second, time.Second, 5 * time.Second} {
		clk.AfterFunc(d, func() { fmt.Println("fired at +", clk.Now().Sub(start)) })
	}
	clk.Advance(4 * time.Second)
	fmt.Println("now +", clk.Now().Sub(start), "with", clk.Timers(), "timer left")
	// Output:
	// fired at + 1s
	// fired at + 3s
	// now + 4s with 1 timer left
}
