package wsconn_test

import (
	"context"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// scBig is a message long enough to be under way when closing begins.
var scBig = make([]byte, 1<<20)

// A goroutine outside the handler (as a topics member is) writes 1 MiB
// messages in 512-byte fragments through the Outbound while the peer's
// CLOSE, a shutdown, out.Close and the handler's return race.
func TestStressClosingLongWriteOutside(t *testing.T) {
	scRun(t, 100, func(i int) error {
		obs := newSCObserver()
		ready, ret := make(chan struct{}), make(chan struct{})
		url, g := testServer(t, &wsconn.Config{Observer: obs, FragmentSize: 512}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			go func() {
				for out.WriteBinary(context.Background(), scBig) == nil {
				}
			}()
			close(ready)
			select {
			case <-ret:
				if i%4 == 1 {
					_ = out.Close(4003, "out.Close")
				}
			case <-ctx.Done():
			}
			return scReturns[i%3]()
		})
		p := scDial(t, url)
		<-ready
		time.Sleep(time.Millisecond)
		causes := []func(){p.closeNow, func() { close(ret) }}
		if i%2 == 0 {
			causes = append(causes, scShutdown(g))
		}
		scFire(500*time.Microsecond, causes...)
		return scFinish(t, p, obs)
	})
}

// The same with the long write in a task of the connection.
func TestStressClosingLongWriteTask(t *testing.T) {
	scRun(t, 100, func(i int) error {
		obs := newSCObserver()
		ready, ret := make(chan struct{}), make(chan struct{})
		url, g := testServer(t, &wsconn.Config{Observer: obs, FragmentSize: 512}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			_ = s.Go(func(ctx context.Context) error {
				for {
					if err := out.WriteBinary(ctx, scBig); err != nil {
						return err
					}
				}
			})
			close(ready)
			select {
			case <-ret:
			case <-ctx.Done():
			}
			return scReturns[i%3]()
		})
		p := scDial(t, url)
		<-ready
		time.Sleep(time.Millisecond)
		causes := []func(){p.closeNow, func() { close(ret) }}
		if i%2 == 0 {
			causes = append(causes, scShutdown(g))
		}
		scFire(500*time.Microsecond, causes...)
		return scFinish(t, p, obs)
	})
}

// The handler streams through a Writer and returns with it open, racing
// the peer's CLOSE and a shutdown: the Writer is abandoned.
func TestStressClosingWriterLeftOpen(t *testing.T) {
	scRun(t, 150, func(i int) error {
		obs := newSCObserver()
		ready, ret := make(chan struct{}), make(chan struct{})
		url, g := testServer(t, &wsconn.Config{Observer: obs, FragmentSize: 256}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			w, err := out.Writer(ctx, messages.KindBinary)
			if err != nil {
				close(ready)
				return err
			}
			close(ready)
			chunk := make([]byte, 1000)
			for {
				select {
				case <-ret:
					return scReturns[i%3]()
				case <-ctx.Done():
					return scReturns[i%3]()
				default:
				}
				if _, err := w.Write(chunk); err != nil {
					return err
				}
			}
		})
		p := scDial(t, url)
		<-ready
		causes := []func(){p.closeNow, func() { close(ret) }}
		if i%2 == 0 {
			causes = append(causes, scShutdown(g))
		}
		scFire(300*time.Microsecond, causes...)
		return scFinish(t, p, obs)
	})
}

// A goroutine outside the handler streams through a Writer, closing each
// message and opening the next, while the handler returns, the peer
// closes and the server shuts down.
func TestStressClosingWriterOutside(t *testing.T) {
	scRun(t, 150, func(i int) error {
		obs := newSCObserver()
		ready, ret := make(chan struct{}), make(chan struct{})
		url, g := testServer(t, &wsconn.Config{Observer: obs, FragmentSize: 256}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			go func() {
				chunk := make([]byte, 700)
				for {
					w, err := out.Writer(context.Background(), messages.KindText)
					if err != nil {
						return
					}
					for range 20 {
						if _, err := w.Write(chunk); err != nil {
							break
						}
					}
					if w.Close() != nil {
						return
					}
				}
			}()
			close(ready)
			select {
			case <-ret:
			case <-ctx.Done():
			}
			return scReturns[i%3]()
		})
		p := scDial(t, url)
		<-ready
		time.Sleep(time.Millisecond)
		causes := []func(){p.closeNow, func() { close(ret) }}
		if i%2 == 0 {
			causes = append(causes, scShutdown(g))
		}
		scFire(300*time.Microsecond, causes...)
		return scFinish(t, p, obs)
	})
}
