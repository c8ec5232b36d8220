package router_test

import (
	"io"
	"net/http"
	"sync"
	"testing"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/router"
)

// An HTTP route of a router that also has ws routes, serving a WebSocket
// with another library (gorilla/websocket's Upgrader asserts
// w.(http.Hijacker), as much net/http code does), with no middleware. For
// a plain request the route gets net/http's writer; for an upgrade request
// it gets the router's recorder, which must still be an http.Hijacker
// (http.ResponseController alone is not enough for such code).
func TestHTTPRouteCanHijackBesideWSRoutes(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	router.WS(r, "/ws", nil, echo[struct{}])
	var wg sync.WaitGroup
	r.HandleFunc("GET /legacy", func(w http.ResponseWriter, req *http.Request) {
		c, err := (&gorilla.Upgrader{}).Upgrade(w, req, nil)
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			_ = c.WriteMessage(gorilla.TextMessage, []byte("legacy"))
			_, _, _ = c.ReadMessage()
		})
	})
	base := serve(t, r)
	defer wg.Wait()

	c, resp, err := dial(t, wsURL(base, "/legacy"), nil)
	if err != nil {
		var body []byte
		if resp != nil {
			body, _ = io.ReadAll(resp.Body)
		}
		t.Fatalf("gorilla on an HTTP route: %v %q", err, body)
	}
	defer c.Close()
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "legacy" {
		t.Fatalf("legacy: %q %v", msg, err)
	}
}
