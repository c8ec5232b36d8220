package router_test

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/internal/group"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// watcher is a wsconn.Observer that writes down upgrade results and the
// routes of the connections it sees end.
type watcher struct {
	mu       sync.Mutex
	upgrades []wsconn.UpgradeResult
	routes   []string
	closed   chan struct{}
}

func newWatcher() *watcher { return &watcher{closed: make(chan struct{}, 8)} }

func (w *watcher) Upgraded(_ *http.Request, u wsconn.UpgradeResult) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.upgrades = append(w.upgrades, u)
}

func (w *watcher) ConnOpened(c *wsconn.Conn) wsconn.ConnObserver {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.routes = append(w.routes, c.Route())
	return connWatcher{w: w}
}

// connWatcher tells its watcher when a connection ends.
type connWatcher struct {
	wsconn.NopObserver
	w *watcher
}

func (c connWatcher) Closed(wsconn.CloseInfo) { c.w.closed <- struct{}{} }

// results returns the upgrade outcomes once there are n of them, or
// after a while: an outcome is reported once the answer is written, which
// may be after the client read it.
func (w *watcher) results(n int) []wsconn.UpgradeResult {
	deadline := time.Now().Add(5 * time.Second)
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.upgrades) < n && time.Now().Before(deadline) {
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
		w.mu.Lock()
	}
	return slices.Clone(w.upgrades)
}

func TestObserverSeesEveryUpgradeOutcome(t *testing.T) {
	w := newWatcher()
	r := router.New(router.WithConfig(quiet), router.WithObserver(w))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			if req.URL.Query().Get("token") == "bad" {
				http.Error(rw, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(rw, req)
		})
	})
	decide := func(req *http.Request) (struct{}, router.Decision) {
		switch req.URL.Query().Get("do") {
		case "reject":
			return struct{}{}, router.Reject(http.StatusTooManyRequests, nil, "slow down")
		case "decline":
			return struct{}{}, router.DontUpgrade()
		}
		return struct{}{}, router.Upgrade(nil)
	}
	router.WS(r, "GET /ws/{room}", decide, echo[struct{}])
	router.WS(r, "/teapot", decide, echo[struct{}])
	r.HandleFunc("GET /teapot", func(rw http.ResponseWriter, _ *http.Request) {
		rw.WriteHeader(http.StatusTeapot)
	})
	base := serve(t, r)

	c, _, err := dial(t, wsURL(base, "/ws/lobby"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/ws/lobby?token=bad", "/ws/lobby?do=reject", "/ws/lobby?do=decline", "/teapot?do=decline", "/nowhere"} {
		if _, _, err := dial(t, wsURL(base, path), nil); err == nil {
			t.Fatalf("dial %s: upgraded", path)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/ws/lobby", nil)
	req.Header = http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"},
		"Sec-Websocket-Version": {"8"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	type result struct {
		route  string
		status int
	}
	var got []result
	for _, u := range w.results(7) {
		got = append(got, result{u.Route, u.Status})
		if u.Duration <= 0 || u.Err != nil || u.Accepted != (u.Status == http.StatusSwitchingProtocols) {
			t.Errorf("%+v: want a duration, no error, accepted only with 101", u)
		}
	}
	want := []result{
		{"/ws/{room}", http.StatusSwitchingProtocols},
		{"/ws/{room}", http.StatusUnauthorized},
		{"/ws/{room}", http.StatusTooManyRequests},
		{"/ws/{room}", http.StatusForbidden},
		{"/teapot", http.StatusTeapot},
		{"", http.StatusNotFound},
		{"/ws/{room}", http.StatusUpgradeRequired},
	}
	// Each is reported after its answer went out, so two in a row may be
	// reported out of order.
	byStatus := func(a, b result) int { return cmp.Or(a.status-b.status, strings.Compare(a.route, b.route)) }
	slices.SortFunc(got, byStatus)
	slices.SortFunc(want, byStatus)
	if !slices.Equal(got, want) {
		t.Errorf("upgrade results\n%v\nwant\n%v", got, want)
	}

	c.Close()
	select {
	case <-w.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !slices.Equal(w.routes, []string{"/ws/{room}"}) {
		t.Errorf("connection routes %q, want the pattern without its method", w.routes)
	}
}

func TestObserverSeesFullServer(t *testing.T) {
	w := newWatcher()
	r := router.New(router.WithConfig(quiet), router.WithObserver(w))
	router.WS(r, "/ws", nil, echo[struct{}])
	full := &group.Group{Limit: 1}
	t.Cleanup(func() { _, _ = full.Shutdown(context.Background()) })
	base := serveWith(t, r, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.ServeHTTP(w, req.WithContext(group.With(req.Context(), full)))
	}))
	if _, _, err := dial(t, wsURL(base, "/ws"), nil); err != nil {
		t.Fatal(err)
	}
	_, resp, err := dial(t, wsURL(base, "/ws"), nil)
	if err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second dial: %v, want 503", err)
	}
	// Each is reported after its answer went out, so the 503 may come
	// first.
	res := w.results(2)
	slices.SortFunc(res, func(a, b wsconn.UpgradeResult) int { return a.Status - b.Status })
	if len(res) != 2 || res[0].Status != http.StatusSwitchingProtocols || res[1].Status != http.StatusServiceUnavailable || res[1].Route != "/ws" {
		t.Errorf("upgrade results %+v, want a 101 and a 503 on /ws", res)
	}
}

func TestRouteObserverTakesOverConnections(t *testing.T) {
	routerWide, own := newWatcher(), newWatcher()
	r := router.New(router.WithConfig(quiet), router.WithObserver(routerWide))
	router.WS(r, "/mine", nil, echo[struct{}], router.WithObserver(own))
	base := serve(t, r)
	c, _, err := dial(t, wsURL(base, "/mine"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case <-own.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the route's observer did not see the connection end")
	}
	if n := len(routerWide.results(1)); n != 1 {
		t.Errorf("the router's observer saw %d upgrades, want 1", n)
	}
	routerWide.mu.Lock()
	defer routerWide.mu.Unlock()
	if len(routerWide.routes) != 0 {
		t.Errorf("the router's observer saw connections %q, want none", routerWide.routes)
	}
}

func TestConfigObserverSeesUpgrades(t *testing.T) {
	w := newWatcher()
	cfg := quiet
	cfg.Observer = w
	r := router.New(router.WithConfig(cfg))
	router.WS(r, "/ws", nil, echo[struct{}])
	base := serve(t, r)
	c, _, err := dial(t, wsURL(base, "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case <-w.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the Config's observer did not see the connection end")
	}
	if res := w.results(1); len(res) != 1 || !res[0].Accepted || res[0].Route != "/ws" {
		t.Errorf("upgrade results %+v, want one accepted on /ws", res)
	}
}
