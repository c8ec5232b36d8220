package wsconn_test

import (
	"context"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// Keep-alive giving up (a PING left unanswered past PongTimeout) or the
// idle timeout, on a fake clock, races the peer's CLOSE and a shutdown.
// When the timeout wins, the peer's CLOSE crossing colibri's is read
// before TCP closes (teardown lingers for it): no reset.
func TestStressClosingTimersRacePeer(t *testing.T) {
	scRun(t, 150, func(i int) error {
		obs := newSCObserver()
		clk := wstest.NewClock()
		cfg := &wsconn.Config{Observer: obs, Clock: clk, PingInterval: 30 * time.Second, PongTimeout: time.Second}
		if i%2 == 1 {
			cfg.PingInterval, cfg.IdleTimeout = -1, 10*time.Second
		}
		ready := make(chan struct{})
		url, g := testServer(t, cfg, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			close(ready)
			for range in.Messages(0) {
			}
			return scReturns[i%3]()
		})
		p := scDial(t, url)
		<-ready
		time.Sleep(time.Millisecond) // the loop reads
		if i%2 == 0 {
			clk.Advance(30 * time.Second) // the PING goes out
		}
		causes := []func(){p.closeNow, func() {
			for range 8 {
				clk.Advance(2 * time.Second)
			}
		}}
		if i%3 == 0 {
			causes = append(causes, scShutdown(g))
		}
		scFire(300*time.Microsecond, causes...)
		return scFinish(t, p, obs)
	})
}
