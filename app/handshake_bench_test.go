package app_test

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// BenchmarkHandshake opens connections one after another through app and
// router, each a TCP connect and a WebSocket handshake, the way
// cmd/wsbench's handshake scenario does; the connections are closed in
// batches outside the timer.
func BenchmarkHandshake(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet, PingInterval: -1}))
	router.WS(r, "/echo", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		return in.Err()
	})
	a := app.New(r, app.Config{Logger: quiet, NoSignals: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	defer func() {
		cancel()
		<-served
	}()
	addr := ln.Addr().String()
	req := []byte("GET /echo HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	open := make([]net.Conn, 0, 500)
	closeAll := func() {
		for _, c := range open {
			c.Close()
		}
		open = open[:0]
	}
	defer closeAll()
	b.ResetTimer()
	for range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			b.Fatalf("status %d", resp.StatusCode)
		}
		open = append(open, c)
		if len(open) == cap(open) {
			b.StopTimer()
			closeAll()
			b.StartTimer()
		}
	}
}
