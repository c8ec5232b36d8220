package wsconn_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/colibri-ws/colibri/wsclient"
	"github.com/colibri-ws/colibri/wsconn"
)

// The client side: the context given to wsclient.Run is cancelled with a
// cause while the handler ranges; the server (colibri's echo) answers the
// 1001 cleanly. in.Err is the context's cause, whichever reached the loop
// first.
func TestCornerClientRunCancelledReportsTheCause(t *testing.T) {
	url, _ := testServer(t, &wsconn.Config{PingInterval: -1}, echo)
	errMine := errors.New("the client went away")
	for i := range 20 {
		ctx, cancel := context.WithCancelCause(context.Background())
		res := make(chan error, 1)
		runErr := make(chan error, 1)
		go func() {
			runErr <- wsclient.Run(ctx, url, func(hctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[*http.Response]) error {
				if err := out.WriteText(hctx, "hi"); err != nil {
					return err
				}
				for range in.Messages(0) {
					cancel(errMine)
				}
				res <- in.Err()
				return in.Err()
			}, &wsclient.Options{Config: &wsconn.Config{PingInterval: -1, Logger: quietLogger}})
		}()
		if err := waitFor(t, res, "the client's loop"); !errors.Is(err, errMine) {
			t.Fatalf("run %d: in.Err() = %v, want the context's cause", i, err)
		}
		waitFor(t, runErr, "Run")
		cancel(nil)
	}
}
