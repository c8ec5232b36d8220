package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// The closure form (Config.WebSocket) over HTTP/2 with a body limit in its
// router's r.Use: the socket reads the request's own body, so more than the
// limit goes through it.
func TestClosureFormH2BodyLimit(t *testing.T) {
	closure := func(r *router.Router) {
		r.Use(func(next http.Handler) http.Handler { return http.MaxBytesHandler(next, 512) })
		router.Everywhere[struct{}](nil, echo, router.WithConfig(wsconn.Config{Logger: quiet}))(r)
	}
	_, base, client, _, _, _ := tlsApp(t, nil, app.Config{HTTP2: true, WebSocket: closure})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, _, err := client.Dial(ctx, base+"/anywhere", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	msg := strings.Repeat("y", 200)
	for i := range 8 {
		if err := s.WriteText(msg); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if _, p, err := s.ReadMessage(); err != nil || string(p) != msg {
			t.Fatalf("message %d (after %d bytes): %d bytes, %v", i, i*206, len(p), err)
		}
	}
}
