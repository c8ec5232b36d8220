package router_test

// Review of f2c5aa7: a non-GET upgrade request passes the ws route's group
// middleware, then goes to the HTTP route serving its method (as a
// declined upgrade) or gets a 405 naming every method.

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/colibri-ws/colibri/router"
)

// r5Counter counts, per name, how often a middleware ran.
type r5Counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *r5Counter) mw(name string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.mu.Lock()
			c.n[name]++
			c.mu.Unlock()
			next.ServeHTTP(w, r)
		})
	}
}

func (c *r5Counter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

// A POST carrying the Upgrade fields to a ws route's path, where an HTTP
// route of another group serves POST, should run each group's middleware
// once, as the same POST without Upgrade does. docs/routing.md: "When both
// routes are registered in the same group, its middleware runs once ...;
// a route of another group answers through its own group's middleware."
// A group made by With or a nested Group carries its parent's middleware,
// so after the ws route's group middleware ran for the request, the HTTP
// route's chain runs the parent's middleware again: twice for one request
// (an auth check, a rate limiter, a request log counting it twice).
// dispatch sends such a request to the HTTP route, through its own
// middleware only. (A GET the decision declines runs the shared parent's
// middleware twice in these layouts, as docs/routing.md says.)
func TestCornerNonGETUpgradeRunsAParentGroupsMiddlewareOnce(t *testing.T) {
	for _, layout := range []string{"With", "nested Group", "ws route nested"} {
		t.Run(layout, func(t *testing.T) {
			c := &r5Counter{n: map[string]int{}}
			r := router.New(router.WithConfig(quiet))
			post := func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, "posted") }
			decide := func(*http.Request) (struct{}, router.Decision) { return struct{}{}, router.DontUpgrade() }
			get := func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, "got") }
			r.Group(func(g *router.Router) {
				g.Use(c.mw("outer"))
				switch layout {
				case "With":
					router.WS(g, "/room", decide, echo[struct{}])
					g.With(c.mw("inner")).HandleFunc("POST /room", post)
					g.With(c.mw("inner")).HandleFunc("GET /room", get)
				case "nested Group":
					router.WS(g, "/room", decide, echo[struct{}])
					g.Group(func(n *router.Router) {
						n.Use(c.mw("inner"))
						n.HandleFunc("POST /room", post)
						n.HandleFunc("GET /room", get)
					})
				case "ws route nested":
					g.HandleFunc("POST /room", post)
					g.HandleFunc("GET /room", get)
					g.Group(func(n *router.Router) {
						n.Use(c.mw("inner"))
						router.WS(n, "/room", decide, echo[struct{}])
					})
				}
			})
			base := serve(t, r)
			addr := strings.TrimPrefix(base, "http://")

			without := rvtExchange(t, addr, "POST /room HTTP/1.1\r\nHost: "+addr+"\r\nContent-Length: 0\r\n\r\n")[0]
			want := c.take()
			for _, req := range []string{
				reviewHSUpgrade(addr, "POST", "/room", "Content-Length: 0\r\n"),
			} {
				got := rvtExchange(t, addr, req)[0]
				n := c.take()
				if got.resp.StatusCode != http.StatusOK || got.resp.StatusCode != without.resp.StatusCode {
					t.Errorf("%s: %d %q", strings.SplitN(req, "\r\n", 2)[0], got.resp.StatusCode, got.body)
				}
				if n["outer"] != 1 || (layout != "ws route nested" && n["inner"] != want["inner"]) {
					t.Errorf("%s: middleware ran %v times; a plain POST runs it %v", strings.SplitN(req, "\r\n", 2)[0], n, want)
				}
			}
		})
	}
}
