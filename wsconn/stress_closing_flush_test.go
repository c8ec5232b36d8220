package wsconn_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/wsconn"
)

// The peer's CLOSE arrives while a goroutine outside the handler writes a
// 1 MiB message in 512-byte fragments, and the handler returns at once:
// the CLOSE waits for the message, and flushClose for the message lock.
// Other goroutines keep trying to write (and fail with ErrClosed), taking
// the message lock for an instant each time. When one of them takes it
// between flushClose's unlockMsg and its sendPendingClose, flushClose goes
// on to flush a control queue that holds no CLOSE yet and teardown closes
// TCP; the CLOSE queued a moment later finds the stream marked broken.
func TestStressClosingFlushCloseLosesLock(t *testing.T) {
	scRun(t, 100, func(i int) error {
		obs := newSCObserver()
		ready, stop := make(chan struct{}), make(chan struct{})
		var wg sync.WaitGroup
		defer func() { close(stop); wg.Wait() }()
		url, _ := testServer(t, &wsconn.Config{Observer: obs, FragmentSize: 512}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			wg.Go(func() {
				for out.WriteBinary(context.Background(), scBig) == nil {
				}
			})
			for range 4 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						_ = out.WriteText(context.Background(), "x")
					}
				})
			}
			close(ready)
			<-ctx.Done()
			return nil
		})
		p := scDial(t, url)
		<-ready
		time.Sleep(time.Millisecond)
		p.closeNow()
		return scFinish(t, p, obs)
	})
}
