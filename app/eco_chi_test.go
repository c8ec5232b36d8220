package app_test

// An App whose handler is chi, which routes to a colibri router (the
// router is not the outermost handler): the App still counts, caps and
// shuts down the router's connections, and its Observer hears of its own
// refusals. Real loopback sockets, gorilla clients.

import (
	"io"
	"log"
	"net/http"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

type rvEcoResults chan wsconn.UpgradeResult

func (o rvEcoResults) Upgraded(_ *http.Request, u wsconn.UpgradeResult) { o <- u }
func (o rvEcoResults) ConnOpened(*wsconn.Conn) wsconn.ConnObserver      { return wsconn.NopObserver{} }

func TestAppCountsCapsAndStopsARouterBehindChi(t *testing.T) {
	results := make(rvEcoResults, 8)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/api/echo", nil, echo)
	cr := chi.NewRouter()
	cr.Use(chimw.RequestLogger(&chimw.DefaultLogFormatter{Logger: log.New(io.Discard, "", 0), NoColor: true}),
		chimw.Recoverer, chimw.Timeout(time.Second))
	cr.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	cr.Mount("/api", r)
	a, base, stop := start(t, cr, app.Config{MaxConnections: 1, Observer: results})

	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/api/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := a.Connections(); n != 1 {
		t.Errorf("App.Connections = %d, want 1 (the router's socket behind chi)", n)
	}
	if n := r.Connections(); n != 0 {
		t.Errorf("Router.Connections = %d under the App, want 0 (the App counts)", n)
	}
	_, resp, err := gorilla.DefaultDialer.Dial(ws(base, "/api/echo"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("second upgrade over MaxConnections: %v %+v, want 503 with Retry-After", err, resp)
	}
	select {
	case u := <-results:
		if u.Accepted || u.Status != http.StatusServiceUnavailable {
			t.Errorf("Observer got %+v, want the App's 503", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the App's Observer was not told of its 503")
	}
	if err := c.WriteMessage(gorilla.TextMessage, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "x" {
		t.Fatalf("echo: %q %v", p, err)
	}
	closed := make(chan int, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := c.ReadMessage()
		ce, _ := err.(*gorilla.CloseError)
		if ce == nil {
			closed <- 0
			return
		}
		closed <- ce.Code
	}()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if code := <-closed; code != gorilla.CloseGoingAway {
		t.Errorf("close code %d at shutdown, want 1001", code)
	}
}
