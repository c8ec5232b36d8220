package router_test

// Review of e4077c4 and 5f3ef5f: a declined upgrade answered by an HTTP
// route of another group, through that group's middleware the ws route's
// group does not share; a non-GET upgrade sent to its HTTP route.

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/router"
)

// r6Stamp is middleware that reports, in response headers, the path value
// id and the pattern it saw on the request.
func r6Stamp(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Mw-Id", r.PathValue("id"))
		w.Header().Set("X-Mw-Pattern", r.Pattern)
		next.ServeHTTP(w, r)
	})
}

// The HTTP route's own group middleware, run for a declined upgrade, should
// see the request as it does for the same GET without Upgrade: the HTTP
// route's path values and pattern. ServeMux sets them before the route's
// middleware runs; decline runs that middleware around the inner
// ServeMux, so before inner sets them: the middleware sees the ws route's
// pattern and its wildcards, not the HTTP route's (an authorization check
// on r.PathValue("id") gets "").
func TestCornerDeclineHTTPGroupMiddlewareSeesItsPathValues(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	decide := func(*http.Request) (struct{}, router.Decision) { return struct{}{}, router.DontUpgrade() }
	router.WS(r.With(), "/items/{room}", decide, echo[struct{}])
	r.With(r6Stamp).HandleFunc("GET /items/{id}", func(w http.ResponseWriter, req *http.Request) {
		io.WriteString(w, "item "+req.PathValue("id"))
	})
	addr := strings.TrimPrefix(serve(t, r), "http://")
	got := rvtExchange(t, addr, rvtPlain(addr, "/items/7"), reviewHSUpgrade(addr, "GET", "/items/7", ""))
	plain, declined := got[0], got[1]
	if plain.resp.StatusCode != 200 || plain.body != "item 7" || plain.resp.Header.Get("X-Mw-Id") != "7" {
		t.Fatalf("plain GET: %d %q %v", plain.resp.StatusCode, plain.body, plain.resp.Header)
	}
	if declined.resp.StatusCode != 200 || declined.body != "item 7" {
		t.Fatalf("declined: %d %q", declined.resp.StatusCode, declined.body)
	}
	for _, k := range []string{"X-Mw-Id", "X-Mw-Pattern"} {
		if p, d := plain.resp.Header.Get(k), declined.resp.Header.Get(k); p != d {
			t.Errorf("%s: plain GET's middleware saw %q, the declined upgrade's %q", k, p, d)
		}
	}
}

// A declined upgrade should be answered by the HTTP route that the same
// GET without Upgrade reaches. decline looks the route up again with the
// request as the ws route's group middleware left it: a group that strips
// a prefix (http.StripPrefix, as for a versioned API) sends the declined
// upgrade for /api/feed to the route for /feed, of another group, where
// the plain GET for /api/feed reaches the /api/feed route.
func TestCornerDeclineRoutesByTheRequestAsMiddlewareRewroteIt(t *testing.T) {
	r := router.New(router.WithConfig(quiet))
	decide := func(*http.Request) (struct{}, router.Decision) { return struct{}{}, router.DontUpgrade() }
	r.Group(func(g *router.Router) {
		g.Use(func(h http.Handler) http.Handler { return http.StripPrefix("/api", h) })
		router.WS(g, "/api/feed", decide, echo[struct{}])
		g.HandleFunc("GET /api/feed", func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, "api feed") })
	})
	r.HandleFunc("GET /feed", func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, "public feed") })
	addr := strings.TrimPrefix(serve(t, r), "http://")
	got := rvtExchange(t, addr, rvtPlain(addr, "/api/feed"), reviewHSUpgrade(addr, "GET", "/api/feed", ""))
	if got[0].resp.StatusCode != 200 || got[0].body != "api feed" {
		t.Fatalf("plain GET: %d %q", got[0].resp.StatusCode, got[0].body)
	}
	if got[1].resp.StatusCode != 200 || got[1].body != got[0].body {
		t.Errorf("declined upgrade: %d %q; the plain GET got %q", got[1].resp.StatusCode, got[1].body, got[0].body)
	}
}
