package router_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// A handshake whose 101 cannot leave (a client that never reads, and a
// decision adding more header bytes than the socket buffers hold) holds a
// place; a shutdown whose deadline comes first closes it as it closes
// open connections, rather than leaving it to the handshake timeout and
// reporting the shutdown incomplete.
func TestShutdownDeadlineClosesAStuckHandshake(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	header := http.Header{}
	for i := range 256 { // 16 MiB of header values
		header.Add("X-Filler", big+string(rune('a'+i%26)))
	}
	rt := router.New(router.WithConfig(wsconn.Config{WriteTimeout: time.Minute}))
	served := make(chan struct{}, 1)
	router.WS(rt, "/ws", func(*http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Upgrade(header)
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		served <- struct{}{}
		return nil
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rt}
	go srv.Serve(ln)
	defer srv.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	req := "GET /ws HTTP/1.1\r\nHost: " + ln.Addr().String() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	// The decision claimed a place; the 101 is now stuck on the socket.
	deadline := time.Now().Add(10 * time.Second)
	for rt.Connections() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the handshake never claimed its place")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	rep, err := rt.Shutdown(ctx)
	took := time.Since(began)
	if err != nil {
		t.Fatalf("Shutdown after %v: %v (report %+v), want the stuck handshake closed at the deadline", took, err, rep)
	}
	if rep.Forced != 1 || rep.Graceful != 0 {
		t.Errorf("report %+v, want the handshake forced", rep)
	}
	if took > 900*time.Millisecond {
		t.Errorf("Shutdown took %v for a 200 ms deadline", took)
	}
	if n := rt.Connections(); n != 0 {
		t.Errorf("%d places held after Shutdown returned", n)
	}
	select {
	case <-served:
		t.Error("the handler ran for a handshake cut by the shutdown")
	default:
	}
}
