package app_test

// Review of 831d2ff: MaxConnections applies where a route decides to
// upgrade (group.Enter), no longer before the upgrade hooks.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// r4Lines is a slog sink keeping the "request" lines of middleware.Log.
type r4Lines struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (s *r4Lines) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m["msg"] == "request" {
		s.lines = append(s.lines, m)
	}
	return len(p), nil
}

// 32 clients upgrade at once to an App capped at 4, their decisions held
// until all of them are deciding, so that every one passes the hooks and
// reaches group.Enter together: exactly 4 get a WebSocket and never more
// than 4 handlers run; the 28 others get 503 with Retry-After, each told
// once to the App's Observer (and not to the router's), logged once by
// middleware.Log as a refused 503. The refused requests hold nothing:
// once the 4 close, Connections is 0 and 4 new clients get in.
func TestCornerCapIsExactUnderConcurrentDecisions(t *testing.T) {
	const clients, limit = 32, 4
	appObs, routerObs := &watcher{}, &watcher{}
	logs := &r4Lines{}
	var hooks, deciding atomic.Int32
	allDeciding := make(chan struct{})
	var open, maxOpen atomic.Int32

	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}), router.WithObserver(routerObs))
	r.Use(middleware.Log(slog.New(slog.NewJSONHandler(logs, nil))))
	router.WS(r, "/ws", func(*http.Request) (struct{}, router.Decision) {
		if deciding.Add(1) == clients {
			close(allDeciding)
		}
		select {
		case <-allDeciding:
		case <-time.After(time.Second):
		}
		return struct{}{}, router.Upgrade(nil)
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		n := open.Add(1)
		defer open.Add(-1)
		for m := maxOpen.Load(); n > m && !maxOpen.CompareAndSwap(m, n); m = maxOpen.Load() {
		}
		return echo(ctx, in, out, s)
	})
	a, base, _ := start(t, r, app.Config{
		MaxConnections: limit,
		RetryAfter:     1500 * time.Millisecond,
		Observer:       appObs,
		UpgradeHooks: []app.UpgradeHook{func(_ http.ResponseWriter, req *http.Request) *http.Request {
			hooks.Add(1)
			return req
		}},
	})
	d := gorilla.Dialer{HandshakeTimeout: 3 * time.Second}

	type result struct {
		c    *gorilla.Conn
		resp *http.Response
		err  error
	}
	results := make(chan result, clients)
	for range clients {
		go func() {
			c, resp, err := d.Dial(ws(base, "/ws"), nil)
			results <- result{c, resp, err}
		}()
	}
	var conns []*gorilla.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	refused := 0
	for range clients {
		res := <-results
		switch {
		case res.err == nil:
			conns = append(conns, res.c)
		case res.resp != nil && res.resp.StatusCode == http.StatusServiceUnavailable:
			refused++
			if ra := res.resp.Header.Get("Retry-After"); ra != "2" {
				t.Errorf("503 with Retry-After %q, want \"2\"", ra)
			}
		default:
			t.Errorf("dial: %v %v", res.err, res.resp)
		}
	}
	if len(conns) != limit || refused != clients-limit {
		t.Fatalf("%d connections and %d refusals, want %d and %d", len(conns), refused, limit, clients-limit)
	}
	if n := a.Connections(); n != limit {
		t.Errorf("Connections %d, want %d", n, limit)
	}
	if n := hooks.Load(); n != clients {
		t.Errorf("the hook ran %d times, want %d", n, clients)
	}

	appObs.wait(clients - limit)
	routerObs.wait(limit)
	appObs.mu.Lock()
	if len(appObs.upgrades) != clients-limit {
		t.Errorf("the App's Observer was told of %d upgrades, want %d refusals", len(appObs.upgrades), clients-limit)
	}
	for _, u := range appObs.upgrades {
		if u.Status != http.StatusServiceUnavailable || u.Accepted {
			t.Errorf("the App's Observer: %+v", u)
		}
	}
	appObs.mu.Unlock()
	routerObs.mu.Lock()
	if len(routerObs.upgrades) != limit {
		t.Errorf("the router's Observer was told of %d upgrades, want the %d accepted", len(routerObs.upgrades), limit)
	}
	for _, u := range routerObs.upgrades {
		if !u.Accepted {
			t.Errorf("the router's Observer: %+v", u)
		}
	}
	routerObs.mu.Unlock()
	logs.mu.Lock()
	n503 := 0
	for _, l := range logs.lines {
		if l["status"] == float64(http.StatusServiceUnavailable) && l["upgrade"] == "refused" {
			n503++
		}
	}
	if n503 != clients-limit || len(logs.lines) != clients {
		t.Errorf("middleware.Log: %d lines, %d of them refused 503s; want %d and %d", len(logs.lines), n503, clients, clients-limit)
	}
	logs.mu.Unlock()

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	deadline := time.Now().Add(2 * time.Second)
	for a.Connections() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := a.Connections(); n != 0 {
		t.Fatalf("Connections %d after every client left", n)
	}
	for range limit {
		c, _, err := d.Dial(ws(base, "/ws"), nil)
		if err != nil {
			t.Fatalf("after the refusals: %v", err)
		}
		conns = append(conns, c)
	}
	if m := maxOpen.Load(); m > limit {
		t.Errorf("%d handlers ran at once, the cap is %d", m, limit)
	}
}

// The closure form on a full App: only an upgrade its decision accepts
// gets the 503 (Retry-After, told once to the Observer); a POST carrying
// the Upgrade fields (no handshake), an upgrade the decision declines and
// one with version 8 get the application's handler or the handshake's
// refusal, as on an App with room.
func TestCornerFullClosureFormRefusesOnlyAcceptedUpgrades(t *testing.T) {
	w := &watcher{}
	plain := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		io.WriteString(rw, "plain "+req.Method+" "+req.URL.Path)
	})
	decide := func(req *http.Request) (struct{}, router.Decision) {
		if req.URL.Path == "/nope" {
			return struct{}{}, router.DontUpgrade()
		}
		return struct{}{}, router.Upgrade(nil)
	}
	_, base, _ := start(t, plain, app.Config{
		MaxConnections: 1,
		Observer:       w,
		WebSocket:      router.Everywhere(decide, echo, router.WithConfig(wsconn.Config{Logger: quiet})),
	})
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w.wait(1)
	addr := strings.TrimPrefix(base, "http://")

	for _, tc := range []struct {
		name, req string
		status    int
		body      string
	}{
		{"POST with Upgrade", strings.Replace(reviewHSUpgrade(addr, "/x", "Content-Length: 0\r\n"), "GET", "POST", 1), http.StatusOK, "plain POST /x"},
		{"declined", reviewHSUpgrade(addr, "/nope", ""), http.StatusOK, "plain GET /nope"},
		{"version 8", strings.Replace(reviewHSUpgrade(addr, "/ws", ""), "Version: 13", "Version: 8", 1), http.StatusUpgradeRequired, ""},
		{"accepted", reviewHSUpgrade(addr, "/ws", ""), http.StatusServiceUnavailable, "try again later"},
	} {
		resp, body := reviewHSRoundTrip(t, addr, tc.req)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, body, tc.status, tc.body)
		}
		if (resp.StatusCode == http.StatusServiceUnavailable) != (resp.Header.Get("Retry-After") == "1") {
			t.Errorf("%s: %d with Retry-After %q", tc.name, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	// The POST is no handshake: the application's handler serves it
	// without the closure form's router, which reports the others.
	w.wait(4)
	w.mu.Lock()
	defer w.mu.Unlock()
	n503 := 0
	for _, u := range w.upgrades {
		if u.Status == http.StatusServiceUnavailable {
			n503++
		}
	}
	if len(w.upgrades) != 4 || n503 != 1 {
		t.Errorf("the Observer: %+v; want 4 results, one 503", w.upgrades)
	}
}

// docs/routing.md, Upgrade hooks: "The order for an upgrade request is:
// hooks in order, the closure form if set, then the router with its
// middleware; the connection limit is checked where a route decides to
// upgrade": on a full App the hook sees the upgrade request that then
// gets the 503.
func TestCornerFullAppChecksTheLimitAfterTheHooks(t *testing.T) {
	var hooks atomic.Int32
	_, base, _ := start(t, newRouter(), app.Config{
		MaxConnections: 1,
		UpgradeHooks: []app.UpgradeHook{func(_ http.ResponseWriter, req *http.Request) *http.Request {
			hooks.Add(1)
			return req
		}},
	})
	c, _, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := hooks.Load()
	_, resp, err := gorilla.DefaultDialer.Dial(ws(base, "/echo"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second dial: %v %v, want 503", err, resp)
	}
	if n := hooks.Load() - before; n != 1 {
		t.Errorf("the hook saw %d upgrade request(s) refused for the limit, want 1", n)
	}
}

// The closure form: a request carrying the Upgrade fields that is no
// handshake (a POST, an HTTP/1.1 CONNECT) is served by the application's
// handler, its Upgrade ignored (RFC 9110 §7.8), as the same request
// without the Upgrade fields is: not through the closure form's ServeMux,
// which would redirect /a//b and refuse a CONNECT in authority form.
func TestCornerClosureFormNonHandshakeGetsTheHandlerAsWithoutUpgrade(t *testing.T) {
	plain := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		io.WriteString(rw, "plain "+req.Method+" "+req.URL.Path)
	})
	_, base, _ := start(t, plain, app.Config{
		WebSocket: router.Everywhere(nil, echo, router.WithConfig(wsconn.Config{Logger: quiet})),
	})
	addr := strings.TrimPrefix(base, "http://")
	upgradeFields := "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, head := range []string{
		"POST /a//b HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 0\r\n",
		"CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n",
	} {
		without, wantBody := reviewHSRoundTrip(t, addr, head+"\r\n")
		with, body := reviewHSRoundTrip(t, addr, head+upgradeFields+"\r\n")
		if without.StatusCode != http.StatusOK || with.StatusCode != without.StatusCode || body != wantBody {
			t.Errorf("%q: %d %q (Location %q, Allow %q) with Upgrade; %d %q without",
				strings.SplitN(head, "\r\n", 2)[0], with.StatusCode, body, with.Header.Get("Location"), with.Header.Get("Allow"),
				without.StatusCode, wantBody)
		}
	}
}
