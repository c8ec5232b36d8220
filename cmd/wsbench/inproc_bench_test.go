package main

import (
	"context"
	"net"
	"testing"
)

// BenchmarkHandshake opens connections one after another against each
// library's server in this process, as the handshake scenario does, and
// keeps them open: a quick way to profile the handshake path
// (go test -bench Handshake/colibri -benchtime 5000x -cpuprofile cpu.out).
// Above 5,000 connections, they are closed in batches outside the timer.
func BenchmarkHandshake(b *testing.B) {
	if err := raiseFileLimit(); err != nil {
		b.Log(err)
	}
	for _, name := range libraryNames() {
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = registry[name].serve(ctx, ln, debugHandler())
			}()
			defer func() {
				cancel()
				<-done
			}()
			open := make([]*clientConn, 0, 5000)
			defer func() { closeAll(open) }()
			b.ResetTimer()
			for range b.N {
				c, err := dial(ctx, ln.Addr().String(), kindOf(name) == floorLib, "/echo", 512)
				if err != nil {
					b.Fatal(err)
				}
				open = append(open, c)
				if len(open) == cap(open) {
					b.StopTimer()
					closeAll(open)
					open = open[:0]
					b.StartTimer()
				}
			}
		})
	}
}
