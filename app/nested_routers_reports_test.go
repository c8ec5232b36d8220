package app_test

import (
	"net/http"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
)

// An App at MaxConnections 1 around an outer router serving an inner
// router, all three with the same Observer: the accepted upgrade and the
// 503 that follows are reported once each.
func TestCornerAppNestedRoutersFullReportsEachOnce(t *testing.T) {
	w := &watcher{}
	inner := router.New(router.WithObserver(w))
	router.WS(inner, "/inner/ws", nil, echo)
	outer := router.New(router.WithObserver(w))
	outer.Handle("/inner/", inner)
	_, base, _ := start(t, outer, app.Config{MaxConnections: 1, Observer: w})

	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/inner/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, resp, err := gorilla.DefaultDialer.Dial(ws(base, "/inner/ws"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second dial: %v %v, want 503", resp, err)
	}
	w.wait(2)
	time.Sleep(200 * time.Millisecond) // a late duplicate
	w.mu.Lock()
	defer w.mu.Unlock()
	var ok, full int
	for _, u := range w.upgrades {
		switch {
		case u.Accepted && u.Status == http.StatusSwitchingProtocols:
			ok++
		case u.Status == http.StatusServiceUnavailable:
			full++
		}
	}
	if len(w.upgrades) != 2 || ok != 1 || full != 1 {
		t.Errorf("reports %+v, want one accepted 101 and one 503", w.upgrades)
	}
}
