package wsconn_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/wsconn"
)

// The context given to Serve ends while a Readers body is reading a
// message the peer began: colibri closes with 1001, and the peer answers
// at once with a clean CLOSE, which the body's own read may take before
// it notices the close. Either way the body's reader and in.Err report
// the context's cause, as docs/closing.md says (the inbound side ended
// because this side closed; the peer only answered), not io.EOF-like
// ends of a clean close by the peer. Before, losing that race gave
// io.ErrUnexpectedEOF and a nil in.Err (in about one run of this test in
// sixteen, each of sixty connections, with both cores kept busy).
func TestCutMessageAfterOurCloseReportsTheCause(t *testing.T) {
	errMine := errors.New("the caller went away")
	for i := range 60 {
		ctx, cancel := context.WithCancelCause(context.Background())
		reading := make(chan struct{})
		results := make(chan [2]error, 1)
		var served sync.WaitGroup
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, err := handshake.Accept(w, r, nil)
			if err != nil {
				return
			}
			served.Add(1)
			defer served.Done()
			_ = wsconn.Serve(ctx, u, struct{}{}, func(hctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
				var rerr error
				for _, r := range in.Readers() {
					close(reading)
					_, rerr = io.Copy(io.Discard, r)
					break
				}
				results <- [2]error{rerr, in.Err()}
				return nil
			}, &wsconn.Config{Logger: quietLogger, PingInterval: -1})
		}))
		c := dialRaw(t, "ws"+strings.TrimPrefix(srv.URL, "http"))
		c.frame(frames.OpText, false, []byte("part one"))
		<-reading
		cancel(errMine)
		c.expectClose(frames.CloseGoingAway)
		c.frame(frames.OpClose, true, closePayload(frames.CloseGoingAway, ""))
		got := waitFor(t, results, "the body")
		c.expectEOF()
		srv.Close()
		served.Wait()
		if !errors.Is(got[0], errMine) || !errors.Is(got[1], errMine) {
			t.Fatalf("run %d: the cut reader said %v and in.Err() %v, want the context's cause for both", i, got[0], got[1])
		}
	}
}
