package wsconn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/wsconn"
)

// Ping's context has no wait to bound (a PING goes out between the
// fragments of a message): one that has ended returns its cause and sends
// nothing, while a live one sends. The peer, gorilla/websocket, sees the
// second PING alone.
func TestPingWithEndedContextSendsNothing(t *testing.T) {
	errTooLate := errors.New("too late")
	results := make(chan [2]error, 1)
	url, _ := testServer(t, nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		ended, cancel := context.WithCancelCause(ctx)
		cancel(errTooLate)
		results <- [2]error{out.Ping(ended, []byte("first")), out.Ping(ctx, []byte("second"))}
		for range in.Messages(0) {
		}
		return nil
	})
	c := dialGorilla(t, url)
	defer c.Close()
	pings := make(chan string, 2)
	c.SetPingHandler(func(p string) error { pings <- p; return nil })
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	errs := waitFor(t, results, "the handler's pings")
	if !errors.Is(errs[0], errTooLate) {
		t.Errorf("Ping with an ended context: %v, want its cause", errs[0])
	}
	if errs[1] != nil {
		t.Errorf("Ping with a live context: %v", errs[1])
	}
	if got := waitWithin(t, pings, 5*time.Second, "a PING"); got != "second" {
		t.Errorf("the peer's first PING says %q, want %q", got, "second")
	}
	select {
	case p := <-pings:
		t.Errorf("another PING arrived: %q", p)
	case <-time.After(100 * time.Millisecond):
	}
}
