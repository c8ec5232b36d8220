package wsconn_test

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

// trafficLog is an Observer that counts each connection's payload bytes
// and reports them when the connection ends. NopObserver gives it
// Upgraded, which a router would call.
type trafficLog struct {
	wsconn.NopObserver
	report chan string
}

// ConnOpened makes the value the connection's events go to: its counters
// are at hand for every message, with no lookup.
func (l trafficLog) ConnOpened(c *wsconn.Conn) wsconn.ConnObserver {
	return &connTraffic{name: c.Request().URL.Query().Get("name"), report: l.report}
}

// connTraffic counts one connection's traffic. NopObserver gives it
// PingRTT and ProtocolError.
type connTraffic struct {
	wsconn.NopObserver
	name    string
	in, out atomic.Int64
	report  chan string
}

func (t *connTraffic) Received(_ messages.Kind, size int64) { t.in.Add(size) }
func (t *connTraffic) Sent(_ messages.Kind, size int64)     { t.out.Add(size) }

func (t *connTraffic) Closed(info wsconn.CloseInfo) {
	t.report <- fmt.Sprintf("%s: %d bytes in, %d out; closed with %d by the %v",
		t.name, t.in.Load(), t.out.Load(), info.Code, info.By)
}

// An Observer sees every connection served with its Config. This one
// keeps per-connection counters in the value ConnOpened returns and writes
// a line when the connection ends. With a router, give it to
// router.WithObserver (or app.Config.Observer) instead, to see upgrade
// requests as well.
func ExampleObserver() {
	obs := trafficLog{report: make(chan string, 1)}
	cfg := &wsconn.Config{Observer: obs}
	echo := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
		for m := range in.Messages(1 << 10) {
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		return in.Err()
	}

	url, stop := exampleServer(echo, cfg)
	defer stop()

	c := exampleDial(url + "/?name=ada")
	_ = c.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, _, _ = c.ReadMessage()
	hangUp(c)
	fmt.Println(<-obs.report)
	// Output:
	// ada: 5 bytes in, 5 out; closed with 1000 by the peer
}
