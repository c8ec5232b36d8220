package wsconn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/wsconn"
)

// scReturns are what a handler returns in these rounds.
var scReturns = []func() error{
	func() error { return nil },
	func() error { return errors.New("handler failed") },
	func() error { return &wsconn.CloseError{Code: 4002, Reason: "handler"} },
}

// The peer's CLOSE, a shutdown and the handler's return (nil, an error, a
// *CloseError) race; the handler does not read, so the background reader
// takes the peer's CLOSE.
func TestStressClosingPeerShutdownReturn(t *testing.T) {
	scRun(t, 150, func(i int) error {
		obs := newSCObserver()
		ready, ret := make(chan struct{}), make(chan struct{})
		url, g := testServer(t, &wsconn.Config{Observer: obs}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			close(ready)
			select {
			case <-ret:
			case <-ctx.Done():
			}
			return scReturns[i%3]()
		})
		p := scDial(t, url)
		<-ready
		time.Sleep(time.Duration(i%3) * 10 * time.Millisecond) // before, around and after the background reader starts
		scFire(200*time.Microsecond, p.closeNow, scShutdown(g), func() { close(ret) })
		return scFinish(t, p, obs)
	})
}

// The same race with a handler that ranges over its messages and returns
// when the loop ends or when told.
func TestStressClosingLoopingHandler(t *testing.T) {
	scRun(t, 150, func(i int) error {
		obs := newSCObserver()
		ready, ret := make(chan struct{}), make(chan struct{})
		url, g := testServer(t, &wsconn.Config{Observer: obs}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			close(ready)
			_ = s.Go(func(ctx context.Context) error {
				select {
				case <-ret:
				case <-ctx.Done():
				}
				if i%2 == 0 {
					return errors.New("task failed")
				}
				return nil
			})
			for m := range in.Messages(0) {
				if err := out.WriteMessage(ctx, m); err != nil {
					return err
				}
			}
			return scReturns[i%3]()
		})
		p := scDial(t, url)
		<-ready
		p.send(frames.OpText, []byte("hello"))
		scFire(200*time.Microsecond, p.closeNow, scShutdown(g), func() { close(ret) })
		return scFinish(t, p, obs)
	})
}

// out.Close races the peer's CLOSE and a shutdown, then the handler returns.
func TestStressClosingOutClose(t *testing.T) {
	scRun(t, 150, func(i int) error {
		obs := newSCObserver()
		ready, closeIt := make(chan struct{}), make(chan struct{})
		url, g := testServer(t, &wsconn.Config{Observer: obs}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			close(ready)
			select {
			case <-closeIt:
				_ = out.Close(4003, "out.Close")
			case <-ctx.Done():
			}
			if i%2 == 0 {
				for range in.Messages(0) {
				}
			}
			return scReturns[i%3]()
		})
		p := scDial(t, url)
		<-ready
		causes := []func(){p.closeNow, func() { close(closeIt) }}
		if i%3 != 0 {
			causes = append(causes, scShutdown(g))
		}
		scFire(200*time.Microsecond, causes...)
		return scFinish(t, p, obs)
	})
}

// A sibling task fails while the peer closes and the server shuts down.
func TestStressClosingTaskFails(t *testing.T) {
	scRun(t, 150, func(i int) error {
		obs := newSCObserver()
		ready, fail := make(chan struct{}), make(chan struct{})
		url, g := testServer(t, &wsconn.Config{Observer: obs}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			_ = s.Go(func(ctx context.Context) error {
				<-fail
				if i%2 == 0 {
					return &wsconn.CloseError{Code: 4004, Reason: "task"}
				}
				return errors.New("task failed")
			})
			close(ready)
			<-ctx.Done()
			return ctx.Err()
		})
		p := scDial(t, url)
		<-ready
		causes := []func(){p.closeNow, func() { close(fail) }}
		if i%3 == 0 {
			causes = append(causes, scShutdown(g))
		}
		scFire(200*time.Microsecond, causes...)
		return scFinish(t, p, obs)
	})
}
