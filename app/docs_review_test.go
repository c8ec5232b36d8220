package app_test

// A check of what docs/configuration.md says of connection counts,
// through a loopback socket and gorilla/websocket as the client.

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// docs/configuration.md, "Connection limit and shutdown": served through
// an app, the app counts the connections (a.Connections()); the router's
// own count (r.Connections()) is for a router served by your own server.
func TestAppCountsTheRoutersConnections(t *testing.T) {
	r := router.New()
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		return in.Err()
	})
	a := app.New(r, app.Config{NoSignals: true, Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	c, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for a.Connections() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("a.Connections() = %d, want 1", a.Connections())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := r.Connections(); n != 0 {
		t.Fatalf("one WebSocket open through the App: a.Connections() = 1, r.Connections() = %d, want 0", n)
	}
}
