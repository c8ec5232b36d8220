package router_test

// Review of 831d2ff: a non-GET upgrade request goes to the HTTP route
// serving its method and path, and the recorder's implicit 200 after an
// informational status. Raw requests on loopback sockets.

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
)

// A site sends 103 Early Hints from middleware, and an upgrade request ends
// as an ordinary response whose handler wrote nothing at all (an empty 200:
// a POST route answering "done" by its status, an HTTP route for a HEAD):
// net/http sends the implicit 200 when the handler returns. The client
// gets 103 then 200, middleware.Log says 200, but the router's observer
// reports Status 103, which is not a status the request ended with.
// implicitOK runs on Write and Flush only; statusSent returns the 1xx as
// it is.
func TestCornerObserverStatusAfterEarlyHintsAndNothingWritten(t *testing.T) {
	obs := newWatcher()
	sink := &rvtSink{}
	r := router.New(router.WithConfig(quiet), router.WithObserver(obs))
	r.Use(middleware.Log(sink.logger()), earlyHints)
	r.HandleFunc("POST /room", func(http.ResponseWriter, *http.Request) {}) // empty 200
	r.HandleFunc("GET /empty", func(http.ResponseWriter, *http.Request) {})
	router.WS(r, "/room", nil, echo[struct{}])
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")

	for _, req := range []string{
		reviewHSUpgrade(addr, "POST", "/room", "Content-Length: 0\r\n"),
		reviewHSUpgrade(addr, "GET", "/empty", ""),
	} {
		resps := ucRaw(t, base, req)
		if len(resps) != 2 || resps[0].StatusCode != http.StatusEarlyHints || resps[1].StatusCode != http.StatusOK {
			t.Fatalf("%q: %d responses; want 103 then 200", strings.SplitN(req, "\r\n", 2)[0], len(resps))
		}
	}
	res := obs.results(2)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for i, u := range res {
		if u.Status != http.StatusOK {
			t.Errorf("request %d: UpgradeResult.Status %d, the client got 200 (middleware.Log says %v)", i, u.Status, sink.lines[i]["status"])
		}
	}
}

// The commit's new routes for a non-GET upgrade request, on one
// keep-alive connection: a HEAD is served by the HTTP route for GET (as
// ServeMux does), an OPTIONS by a route registered without a method, a
// POST with a body by the POST route, which reads it (and the connection
// goes on with the next request); a DELETE no route takes gets 405 naming
// every method, GET for the ws route included; GET still opens the
// WebSocket. The observer and middleware.Log give each the status the
// client got, as a refused upgrade of the ws route's pattern.
func TestCornerNonGETUpgradeGoesToTheHTTPRouteForItsMethod(t *testing.T) {
	obs := newWatcher()
	sink := &rvtSink{}
	r := router.New(router.WithConfig(quiet), router.WithObserver(obs))
	r.Use(middleware.Log(sink.logger()))
	r.HandleFunc("GET /room", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Route", "get")
		io.WriteString(w, "snapshot")
	})
	r.HandleFunc("POST /room", func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "posted "+string(b))
	})
	r.HandleFunc("/any", func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, "any "+req.Method) })
	router.WS(r, "/room", nil, echo[struct{}])
	router.WS(r, "/any", nil, echo[struct{}])
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")

	head := r4Head(t, addr, reviewHSUpgrade(addr, "HEAD", "/room", ""))
	got := rvtExchange(t, addr,
		reviewHSUpgrade(addr, "OPTIONS", "/any", ""),
		reviewHSUpgrade(addr, "POST", "/room", "Content-Length: 5\r\n")+"hello",
		reviewHSUpgrade(addr, "DELETE", "/room", ""),
		rvtPlain(addr, "/room"),
	)
	options, post, del, plain := got[0], got[1], got[2], got[3]
	if head.StatusCode != http.StatusOK || head.Header.Get("X-Route") != "get" {
		t.Errorf("HEAD: %d X-Route %q, want the GET route's 200", head.StatusCode, head.Header.Get("X-Route"))
	}
	if options.resp.StatusCode != http.StatusOK || options.body != "any OPTIONS" {
		t.Errorf("OPTIONS: %d %q, want the method-less route's answer", options.resp.StatusCode, options.body)
	}
	if post.resp.StatusCode != http.StatusCreated || post.body != "posted hello" {
		t.Errorf("POST: %d %q, want 201 \"posted hello\"", post.resp.StatusCode, post.body)
	}
	allow := strings.Split(strings.ReplaceAll(del.resp.Header.Get("Allow"), " ", ""), ",")
	slices.Sort(allow)
	if del.resp.StatusCode != http.StatusMethodNotAllowed || !slices.Equal(allow, []string{"GET", "HEAD", "POST"}) {
		t.Errorf("DELETE: %d Allow %q, want 405 naming GET, HEAD and POST", del.resp.StatusCode, del.resp.Header.Get("Allow"))
	}
	if plain.resp.StatusCode != http.StatusOK || plain.body != "snapshot" {
		t.Errorf("the plain GET after them: %d %q", plain.resp.StatusCode, plain.body)
	}
	for i, raw := range got[:3] {
		if f := raw.fields("Upgrade"); len(f) > 0 {
			t.Errorf("response %d carries Upgrade %q", i, f)
		}
	}

	c, _, err := dial(t, wsURL(base, "/room"), nil)
	if err != nil {
		t.Fatalf("GET upgrade: %v", err)
	}
	c.Close()

	res := obs.results(5)
	if len(res) != 5 {
		t.Fatalf("the observer was told of %d upgrade requests, want 5", len(res))
	}
	wire := []int{head.StatusCode, options.resp.StatusCode, post.resp.StatusCode, del.resp.StatusCode}
	wantRoutes := []string{"/room", "/any", "/room", "/room"}
	for i, status := range wire {
		if u := res[i]; u.Status != status || u.Accepted || u.Route != wantRoutes[i] || u.Err != nil {
			t.Errorf("request %d: observer %+v; the wire says %d", i, u, status)
		}
	}
	if u := res[4]; !u.Accepted || u.Status != http.StatusSwitchingProtocols {
		t.Errorf("the GET upgrade: observer %+v", u)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	var lines []map[string]any
	for _, l := range sink.lines {
		if l["msg"] == "request" && l["upgrade"] != nil {
			lines = append(lines, l)
		}
	}
	if len(lines) != 5 {
		t.Fatalf("middleware.Log logged %d upgrade requests, want 5", len(lines))
	}
	for i, status := range wire {
		if l := lines[i]; l["status"] != float64(status) || l["upgrade"] != "refused" {
			t.Errorf("request %d: middleware.Log %v; the wire says %d", i, l, status)
		}
	}
}

// docs/routing.md, Middleware: "A ws route matches upgrade requests by
// path whatever their method, so that it can answer a wrong one with 405:
// such a request passes the group's middleware first." Since 831d2ff a
// POST upgrade to a ws route whose path an HTTP route (here of the same
// authenticated group) serves with another method gets the 405, naming
// GET and PUT, from dispatch, before the group's authentication: no 401.
func TestCornerWrongMethodUpgradePassesTheGroupsMiddlewareFirst(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	r.Group(func(r *router.Router) {
		r.Use(middleware.BasicAuth("chat", func(_ context.Context, u, p string) bool { return u == "a" && p == "b" }))
		r.HandleFunc("PUT /private", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "put") })
		router.WS(r, "/private", nil, echo[struct{}])
	})
	base := serve(t, r)
	addr := strings.TrimPrefix(base, "http://")

	raw := rvtExchange(t, addr, reviewHSUpgrade(addr, "POST", "/private", "Content-Length: 0\r\n"))[0]
	if raw.resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST upgrade without credentials: %d Allow %q, want the group's 401 first",
			raw.resp.StatusCode, raw.resp.Header.Get("Allow"))
	}
}

// r4Head sends a HEAD request on a connection of its own and returns the
// response's head.
func r4Head(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodHead})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
