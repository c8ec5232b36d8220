package middleware_test

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
)

// rvrw3Nest builds outer -> middle -> inner routers (ws route in the
// innermost at /a/b/ws) with Log in the r.Use of those named in where.
func rvrw3Nest(t *testing.T, where map[string]*sink) (outer *router.Router) {
	t.Helper()
	use := func(r *router.Router, name string) {
		if s := where[name]; s != nil {
			r.Use(middleware.Log(slogOf(s)))
		}
	}
	inner := newRouter()
	use(inner, "inner")
	router.WS(inner, "/a/b/ws", nil, who)
	middle := newRouter()
	use(middle, "middle")
	middle.Handle("/a/b/", inner)
	outer = newRouter()
	use(outer, "outer")
	outer.Handle("/a/", middle)
	rvrw2Shut(t, inner)
	rvrw2Shut(t, middle)
	return outer
}

// Log in the r.Use of each of three nested routers, and in front of the
// outermost: each logs the innermost router's upgrade 101 "accepted".
func TestLogEveryLevelOfThreeNested(t *testing.T) {
	names := []string{"front", "outer", "middle", "inner"}
	sinks := map[string]*sink{}
	for _, n := range names {
		_, s := newSink()
		sinks[n] = s
	}
	outer := rvrw3Nest(t, sinks)
	base := serve(t, middleware.Log(slogOf(sinks["front"]))(outer))
	c, _, err := dial(t, wsURL(base, "/a/b/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		line := sinks[n].next(t, map[string]any{"msg": "request", "path": "/a/b/ws"})
		if line["status"] != int64(101) || line["upgrade"] != "accepted" {
			t.Errorf("Log %s: status %v upgrade %v, want 101 accepted", n, line["status"], line["upgrade"])
		}
	}
}

// The same over HTTP/2: an accepted extended CONNECT is logged 200
// "accepted" at every level.
func TestLogEveryLevelOfThreeNestedH2(t *testing.T) {
	names := []string{"outer", "middle", "inner"}
	sinks := map[string]*sink{}
	for _, n := range names {
		_, s := newSink()
		sinks[n] = s
	}
	outer := rvrw3Nest(t, sinks)
	base, client := h2Serve(t, outer)
	s, _, err := client.Dial(t.Context(), base+"/a/b/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	if _, _, err := s.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		line := sinks[n].next(t, map[string]any{"msg": "request", "path": "/a/b/ws"})
		if line["status"] != int64(200) || line["upgrade"] != "accepted" {
			t.Errorf("Log %s: status %v upgrade %v, want 200 accepted", n, line["status"], line["upgrade"])
		}
	}
}

// rvrw3HijackOnly is a wrapper in front of the router that lets it hijack
// (it implements http.Hijacker) but has no Unwrap, as many older writer
// wrappers do.
type rvrw3HijackOnly struct{ http.ResponseWriter }

func (w rvrw3HijackOnly) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Log's godoc: a writer without Unwrap between Log and a router hides the
// router's notice of an accepted upgrade: Log in front of such a wrapper
// (Hijack, no Unwrap) logs the upgrade "hijacked", status 0; the WebSocket
// itself works.
func TestLogInFrontOfHijackerWithoutUnwrap(t *testing.T) {
	logger, logs := newSink()
	r := newRouter()
	router.WS(r, "/ws", nil, who)
	wrap := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.ServeHTTP(rvrw3HijackOnly{w}, req)
	})
	rvrw2Shut(t, r)
	base := serve(t, middleware.Log(logger)(wrap))
	c, _, err := dial(t, wsURL(base, "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	wantAttrs(t, logs.next(t, map[string]any{"msg": "request", "path": "/ws"}),
		map[string]any{"status": int64(0), "upgrade": "hijacked"})
}

func slogOf(s *sink) *slog.Logger { return slog.New(s) }
