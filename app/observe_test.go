package app_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// watcher is a wsconn.Observer that writes down upgrade outcomes and the
// routes of the connections it sees.
type watcher struct {
	mu       sync.Mutex
	upgrades []wsconn.UpgradeResult
	routes   []string
}

func (w *watcher) Upgraded(_ *http.Request, u wsconn.UpgradeResult) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.upgrades = append(w.upgrades, u)
}

func (w *watcher) ConnOpened(c *wsconn.Conn) wsconn.ConnObserver {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.routes = append(w.routes, c.Route())
	return wsconn.NopObserver{} // counts the connection, ignores its events
}

// wait waits a while for n outcomes: they are reported once the answer
// is written, after the client may have read it.
func (w *watcher) wait(n int) {
	deadline := time.Now().Add(5 * time.Second)
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.upgrades) < n && time.Now().Before(deadline) {
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
		w.mu.Lock()
	}
}

func TestObserverSeesClosureFormAndLimit(t *testing.T) {
	w := &watcher{}
	_, base, _ := start(t, nil, app.Config{
		MaxConnections: 1,
		Observer:       w,
		WebSocket:      router.Everywhere(nil, echo, router.WithConfig(wsconn.Config{Logger: quiet})),
	})
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/anywhere"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The echo shows the connection is served, so it has been seen.
	if err := c.WriteMessage(gorilla.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	w.wait(1)
	_, resp, err := gorilla.DefaultDialer.Dial(ws(base, "/anywhere"), nil)
	if err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second dial: %v, want 503", err)
	}
	w.wait(2)

	w.mu.Lock()
	defer w.mu.Unlock()
	var got []wsconn.UpgradeResult
	for _, u := range w.upgrades {
		u.Duration = 0
		got = append(got, u)
	}
	want := []wsconn.UpgradeResult{
		{Route: "/", Accepted: true, Status: http.StatusSwitchingProtocols},
		{Status: http.StatusServiceUnavailable},
	}
	if !slices.Equal(got, want) {
		t.Errorf("upgrades %+v, want %+v", got, want)
	}
	if !slices.Equal(w.routes, []string{"/"}) {
		t.Errorf("connection routes %q, want the closure form's \"/\"", w.routes)
	}
}
