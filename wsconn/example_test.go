package wsconn_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// Messages yields whole messages up to a size limit. The payload is
// borrowed: it is reused once the loop body returns, so keep a Clone.
// After the loop, Err says why it ended: nil when the peer closed cleanly.
func ExampleInbound_Messages() {
	ended := make(chan error, 1)
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var history []messages.Message
		for m := range in.Messages(4 << 10) { // a larger message closes with 1009
			history = append(history, m.Clone())
			if err := out.WriteText(ctx, fmt.Sprintf("#%d %s", len(history), m.Payload)); err != nil {
				return err
			}
		}
		ended <- in.Err()
		return in.Err()
	}
	url, stop := exampleServer(handler, nil)
	defer stop()

	c := exampleDial(url)
	for _, s := range []string{"hello", "world"} {
		c.WriteMessage(websocket.TextMessage, []byte(s))
		_, p, _ := c.ReadMessage()
		fmt.Println(string(p))
	}
	hangUp(c)
	fmt.Println("clean close:", <-ended)

	c = exampleDial(url)
	c.WriteMessage(websocket.BinaryMessage, make([]byte, 5000))
	_, _, err := c.ReadMessage()
	fmt.Println(err)
	c.Close()
	err = <-ended
	fmt.Println("too large:", wsconn.CloseStatus(err), errors.Is(err, messages.ErrTooLarge))
	// Output:
	// #1 hello
	// #2 world
	// clean close: <nil>
	// websocket: close 1009 (message too big): message too large
	// too large: 1009 message too big true
}

// Frames yields data frames as they arrive, continuation frames included,
// for handlers that process a fragmented message piece by piece. Colibri
// still checks the order of fragments and the UTF-8 of text across them.
func ExampleInbound_Frames() {
	seen := make(chan string, 8)
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for f := range in.Frames() {
			seen <- fmt.Sprintf("%-12v fin=%-5v %q", f.Op, f.Fin, f.Payload)
		}
		close(seen)
		return in.Err()
	}
	url, stop := exampleServer(handler, nil)
	defer stop()

	// A client that sends a message in fragments of at most 4 bytes.
	d := websocket.Dialer{WriteBufferSize: 4}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	c.WriteMessage(websocket.TextMessage, []byte("hello world"))
	hangUp(c)
	for s := range seen {
		fmt.Println(s)
	}
	// Output:
	// text         fin=false "hell"
	// continuation fin=false "o wo"
	// continuation fin=true  "rld"
}

// Readers yields each message as an io.Reader, so a large message can be
// processed as it arrives without being held in memory. No size limit
// applies: the loop body decides how much to read.
func ExampleInbound_Readers() {
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for kind, r := range in.Readers() {
			h := sha256.New()
			n, err := io.Copy(h, r)
			if err != nil {
				return err // why the message ended early, as in.Err() would say
			}
			if err := out.WriteText(ctx, fmt.Sprintf("%v, %d bytes, sha256 %x", kind, n, h.Sum(nil)[:4])); err != nil {
				return err
			}
		}
		return in.Err()
	}
	url, stop := exampleServer(handler, nil)
	defer stop()

	c := exampleDial(url)
	c.WriteMessage(websocket.BinaryMessage, bytes.Repeat([]byte("colibri "), 128<<10)) // 1 MiB
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	for range 2 {
		_, p, _ := c.ReadMessage()
		fmt.Println(string(p))
	}
	hangUp(c)
	// Output:
	// binary, 1048576 bytes, sha256 e754bcd5
	// text, 2 bytes, sha256 8f434346
}

// Leaving a loop does not close the connection: the next loop, with the
// same or another iterator, continues where the last one stopped. Here
// the first message is a greeting and the rest are served in a second
// loop.
func ExampleInbound() {
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		var hello messages.Message
		for m := range in.Messages(0) {
			hello = m.Clone()
			break
		}
		if in.Err() != nil {
			return in.Err() // the peer left before saying hello
		}
		for m := range in.Messages(0) {
			if err := out.WriteText(ctx, hello.Text()+", "+m.Text()); err != nil {
				return err
			}
		}
		return in.Err()
	}
	url, stop := exampleServer(handler, nil)
	defer stop()

	c := exampleDial(url)
	for _, s := range []string{"hi", "one", "two"} {
		c.WriteMessage(websocket.TextMessage, []byte(s))
	}
	for range 2 {
		_, p, _ := c.ReadMessage()
		fmt.Println(string(p))
	}
	hangUp(c)
	// Output:
	// hi, one
	// hi, two
}

// Writer streams one message of unknown length. It goes out as a frame per
// Config.FragmentSize bytes written and a final frame on Close; the peer
// receives one message.
func ExampleOutbound_Writer() {
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		w, err := out.Writer(ctx, messages.KindText)
		if err != nil {
			return err
		}
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "row %d\n", i)
		}
		// Close sends the final frame; until then other writers wait.
		return w.Close()
	}
	url, stop := exampleServer(handler, &wsconn.Config{FragmentSize: 8})
	defer stop()

	c := exampleDial(url)
	_, p, _ := c.ReadMessage()
	fmt.Printf("%q\n", p)
	_, _, err := c.ReadMessage()
	fmt.Println(err)
	c.Close()
	// Output:
	// "row 1\nrow 2\nrow 3\n"
	// websocket: close 1000 (normal)
}

// A handler starts sibling tasks with Go: here one pushes updates while
// the handler reads. The task shares the handler's context, which ends
// when the connection does, and the connection is not torn down before
// the task has returned. A task that returns an error closes the
// connection with 1011.
func ExampleSession_Go() {
	stopped := make(chan string, 1)
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		s.Go(func(ctx context.Context) error {
			for i := 1; i <= 3; i++ {
				if err := out.WriteText(ctx, fmt.Sprintf("update %d", i)); err != nil {
					return err
				}
			}
			<-ctx.Done() // until the connection ends
			stopped <- "feed stopped: " + context.Cause(ctx).Error()
			return nil
		})
		for m := range in.Messages(0) {
			if m.Text() == "bye" {
				return nil // closes with 1000 once the feed has returned
			}
		}
		return in.Err()
	}
	url, stop := exampleServer(handler, nil)
	defer stop()

	c := exampleDial(url)
	for range 3 {
		_, p, _ := c.ReadMessage()
		fmt.Println(string(p))
	}
	c.WriteMessage(websocket.TextMessage, []byte("bye"))
	_, _, err := c.ReadMessage()
	fmt.Println(err)
	c.Close()
	fmt.Println(<-stopped)
	// Output:
	// update 1
	// update 2
	// update 3
	// websocket: close 1000 (normal)
	// feed stopped: wsconn: close 1000 normal closure
}

// A handler that only writes. While nobody ranges over in, colibri reads
// for the handler: it answers PING frames, and the peer's CLOSE cancels
// ctx, with a *CloseError holding the peer's code as the cause.
func ExampleHandler_writeOnly() {
	cause := make(chan error, 1)
	clock := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-ctx.Done():
				cause <- context.Cause(ctx)
				return nil // colibri has answered the peer's CLOSE already
			case <-tick.C:
				if err := out.WriteText(ctx, fmt.Sprintf("tick %d", i)); err != nil {
					return err
				}
			}
		}
	}
	url, stop := exampleServer(clock, nil)
	defer stop()

	c := exampleDial(url)
	for range 2 {
		_, p, _ := c.ReadMessage()
		fmt.Println(string(p))
	}
	pong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pong <- s; return nil })
	c.WriteControl(websocket.PingMessage, []byte("still there?"), time.Now().Add(time.Second))
	for len(pong) == 0 {
		c.ReadMessage() // more ticks; the pong handler runs in here
	}
	fmt.Println("pong:", <-pong)
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "tab closed")
	c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	c.Close()
	fmt.Println("server saw:", wsconn.CloseStatus(<-cause))
	// Output:
	// tick 1
	// tick 2
	// pong: still there?
	// server saw: 1001 going away
}

// A handler closes with a code of its choice by returning a *CloseError.
// When the peer closes with a code other than 1000, 1001 or 1005,
// Inbound.Err returns one, and CloseStatus reads its code.
func ExampleCloseError() {
	ended := make(chan error, 1)
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if m.Text() == "/quit" {
				return &wsconn.CloseError{Code: 4000, Reason: "see you"}
			}
		}
		ended <- in.Err()
		return nil // colibri has answered the peer's CLOSE already
	}
	url, stop := exampleServer(handler, nil)
	defer stop()

	c := exampleDial(url)
	c.WriteMessage(websocket.TextMessage, []byte("/quit"))
	_, _, err := c.ReadMessage()
	fmt.Println("client:", err)
	c.Close()

	c = exampleDial(url)
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "tab closed"))
	_, _, err = c.ReadMessage()
	fmt.Println("client:", err)
	c.Close()
	err = <-ended
	fmt.Println("server:", err, "| code", wsconn.CloseStatus(err))
	// Output:
	// client: websocket: close 4000: see you
	// client: websocket: close 4001: tab closed
	// server: wsconn: close 4001 (application): tab closed | code 4001 (application)
}

// Prepare frames a message once; WritePrepared then sends the same bytes
// to every connection, which makes fan-out cheap.
func ExamplePrepare() {
	var mu sync.Mutex
	subscribers := map[*wsconn.Outbound]bool{}
	joined := make(chan struct{})
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		mu.Lock()
		subscribers[out] = true
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(subscribers, out)
			mu.Unlock()
		}()
		joined <- struct{}{}
		for range in.Messages(0) { // until the peer leaves
		}
		return in.Err()
	}
	url, stop := exampleServer(handler, nil)
	defer stop()
	a, b := exampleDial(url), exampleDial(url)
	<-joined
	<-joined

	p := wsconn.Prepare(messages.Text("goal! 1-0"))
	mu.Lock()
	for out := range subscribers {
		if err := out.WritePrepared(context.Background(), p); err != nil {
			fmt.Println(err)
		}
	}
	mu.Unlock()
	for _, c := range []*websocket.Conn{a, b} {
		_, msg, _ := c.ReadMessage()
		fmt.Println(string(msg))
		hangUp(c)
	}
	// Output:
	// goal! 1-0
	// goal! 1-0
}

// exampleServer serves handler on a loopback port the way ExampleAccept
// does. stop closes the open connections with 1001 and the server.
func exampleServer(handler wsconn.Handler[struct{}], cfg *wsconn.Config) (url string, stop func()) {
	if cfg == nil {
		cfg = &wsconn.Config{}
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, nil)
		if err != nil {
			return
		}
		// When ctx ends, the connection closes with 1001 Going Away.
		_ = wsconn.Serve(ctx, u, struct{}{}, handler, cfg)
	}))
	return "ws" + strings.TrimPrefix(srv.URL, "http"), func() {
		cancel()
		srv.Close()
	}
}

// exampleDial opens a client connection with gorilla/websocket.
func exampleDial(url string) *websocket.Conn {
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		panic(err)
	}
	return c
}

// hangUp closes c the way a browser does: it sends CLOSE 1000, waits for
// the server's CLOSE and closes the transport.
func hangUp(c *websocket.Conn) {
	msg := websocket.FormatCloseMessage(int(frames.CloseNormal), "")
	_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	c.Close()
}

// An Extension's String is its header form; a quoted value, which must
// be a token once unquoted (RFC 6455 §9.1), comes back without quotes.
func ExampleExtension_String() {
	exts, err := handshake.ParseExtensions(`x-colibri; mode="fast"; flag`)
	if err != nil {
		panic(err)
	}
	fmt.Println(exts[0])
	_, err = handshake.ParseExtensions(`x-colibri; note="two words"`)
	fmt.Println(err != nil)
	// Output:
	// x-colibri; mode=fast; flag
	// true
}
