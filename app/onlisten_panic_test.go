package app_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/app"
)

// TestCallbackOnListenPanicClosesTheListener: Config.OnListen runs in
// Run's goroutine once the listener is up and before serving. A panic in
// it goes up to Run's caller (fair: it is the caller's goroutine), but
// Run opened the listener itself and leaves it open: nobody can close it
// any more, the port stays bound, and clients connecting to it sit in the
// accept queue of a listener nobody accepts on. Serve, which owns ln from
// its call ("closes ln"), does the same.
func TestCallbackOnListenPanicClosesTheListener(t *testing.T) {
	a := app.New(http.NotFoundHandler(), app.Config{Addr: "127.0.0.1:0", Logger: quiet, NoSignals: true,
		OnListen: func(net.Addr) { panic("on-listen boom") }})
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		_ = a.Run(context.Background())
	}()
	if panicked == nil {
		t.Fatal("OnListen's panic did not reach Run's caller")
	}
	addr := a.Addr()
	if addr == nil {
		t.Fatal("no address")
	}
	c, err := net.DialTimeout("tcp", addr.String(), time.Second)
	if err == nil {
		c.Close()
		t.Errorf("%v still accepts connections after Run panicked: the listener was left open", addr)
	}
}
