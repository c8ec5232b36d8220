package router_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// TestServeHTTPReturnsAfterTheHandshake: docs/scaling.md, "after
// the handshake, ServeHTTP returns (the router serves an HTTP/1.1
// connection with wsconn.Start), so net/http's per-request state and the
// request goroutine's stack are not kept for the life of the connection".
// A handler wrapped around the router sees its ServeHTTP return while the
// WebSocket handler is still running, and the handler's context stays
// alive after it returned.
func TestServeHTTPReturnsAfterTheHandshake(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	running := make(chan struct{})
	release := make(chan struct{})
	ctxErr := make(chan error, 1)
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		close(running)
		select {
		case <-release:
		case <-ctx.Done():
		}
		ctxErr <- ctx.Err()
		return out.WriteText(ctx, "still here")
	})
	returned := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.ServeHTTP(w, req)
		if req.URL.Path == "/ws" {
			returned <- struct{}{}
		}
	}))
	defer srv.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := r.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()

	c, _, err := gorilla.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-running
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("ServeHTTP still running 5 s after the handshake, while the handler runs")
	}
	close(release)
	if err := <-ctxErr; err != nil {
		t.Fatalf("handler's context ended with ServeHTTP: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "still here" {
		t.Fatalf("after ServeHTTP returned: %q %v", p, err)
	}
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
		t.Fatalf("handler returned nil: %v, want close 1000", err)
	}
}
