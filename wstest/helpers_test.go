package wstest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// inOwnGoroutine calls f on a goroutine of its own, as a test runs, and
// returns once f has ended, by returning or by runtime.Goexit.
func inOwnGoroutine(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// heldFailure dials a scripted server whose script (if not nil) runs and
// then holds the connection until f is done, f given the client with
// timeout; it returns the failure f reported, once the script has ended.
func heldFailure(t *testing.T, script func(p *rawPeer), timeout time.Duration, f func(c *wstest.Client)) string {
	t.Helper()
	release := make(chan struct{})
	srv, done := scripted(t, func(p *rawPeer) {
		if script != nil {
			script(p)
		}
		<-release
	})
	got := failure(t, func(tb testing.TB) {
		c := srv.Dial(tb, "/", nil)
		c.Timeout = timeout
		f(c)
	})
	close(release)
	waitFor(t, "script", done)
	return got
}

// endingServer starts an in-memory server whose handler reads until the
// client goes, then hands over what ended its session on the channel.
func endingServer(t *testing.T) (*wstest.Server, <-chan error) {
	ended := make(chan error, 1)
	srv := wstest.NewMemoryServer(t, wstest.Handler(struct{}{}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for range in.Messages(0) {
		}
		ended <- in.Err()
		return nil
	}, echoHandler()))
	return srv, ended
}

// plainGet sends srv a plain HTTP GET of / and returns the response, its
// body closed.
func plainGet(t *testing.T, srv *wstest.Server) *http.Response {
	t.Helper()
	tr := &http.Transport{DialContext: srv.NetDial}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: guard}).Get("http://wstest.invalid/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}
