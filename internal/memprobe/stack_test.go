package memprobe

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"testing"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/internal/race"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// TestIdleConnectionKeepsSmallestStack guards what docs/performance.md and
// docs/architecture.md promise: an idle connection's goroutine waits for
// its peer on the runtime's smallest stack (2 KiB). One call frame more on
// the path from the loop to the socket read doubles it. The race detector
// deepens every stack, so .ci/run runs this test without it too.
func TestIdleConnectionKeepsSmallestStack(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector deepens stacks; .ci/run runs this test without it")
	}
	const n = 300
	quiet := slog.New(slog.DiscardHandler)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/echo", nil, echo)
	a := app.New(r, app.Config{Logger: quiet, NoSignals: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	defer func() {
		cancel()
		<-served
	}()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// The cost of n more connections once n are open, as the median of
	// several steps: what the runtime and the server hold besides the
	// connections does not count, and the runtime's stack caches, which
	// can hold a few hundred KiB more or less at any moment, cannot decide
	// the result on their own.
	open := func() snapshot {
		for range n {
			conns = append(conns, dial(t, ln.Addr().String()))
		}
		for a.Connections() < len(conns) {
			settle()
		}
		settle()
		return stats()
	}
	prev := open()
	var steps []float64
	for range 5 {
		next := open()
		steps = append(steps, float64(int64(next.StackInuse)-int64(prev.StackInuse))/n/1024)
		prev = next
	}
	slices.Sort(steps)
	per := steps[len(steps)/2]
	t.Logf("stack per idle connection: %.2f KiB (steps %.2f)", per, steps)
	if per > 3 {
		t.Fatalf("%.2f KiB of stack per idle connection, want the runtime's smallest (2 KiB, under 3 with what the runtime keeps)", per)
	}
}
