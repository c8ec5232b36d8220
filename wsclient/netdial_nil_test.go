package wsclient_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/wsclient"
)

// TestCallbackNetDialNilNilIsAnError: Options.NetDial is application
// code that may return (nil, nil), as a hook of http.Transport may; the
// Transport turns that into the error "DialContext hook returned (nil,
// nil)". Dial instead goes on with the nil connection and panics with a
// nil pointer dereference in dialer.handshake (conn.SetDeadline /
// req.Write on nil), in the caller's goroutine: a program that dials in
// a goroutine of its own dies.
func TestCallbackNetDialNilNilIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	opts := &wsclient.Options{
		Proxy:            func(*http.Request) (*url.URL, error) { return nil, nil },
		NetDial:          func(context.Context, string, string) (net.Conn, error) { return nil, nil },
		HandshakeTimeout: time.Second,
	}
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		_, _, err = wsclient.Dial(context.Background(), "ws://"+ln.Addr().String()+"/", opts)
	}()
	if panicked != nil {
		t.Fatalf("Dial panicked: %v", fmt.Sprint(panicked))
	}
	if err == nil {
		t.Fatal("Dial succeeded without a connection")
	}
}
