package observe_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/colibri-ws/colibri/observe"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wstest"
)

// upgradeGet sends a WebSocket upgrade request for path and returns the
// status; it does not follow redirects.
func upgradeGet(t *testing.T, base, path string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	c.CloseIdleConnections()
	return resp.StatusCode
}

// docs/observability.md "Attributes": http.route is "the ws route's
// pattern" ("" for requests that matched no route), and "everything else
// is bounded by the routes you register". Client-chosen paths that ServeMux
// redirects (a missing trailing slash, an unclean path), that match
// nothing, or that fill the route's wildcard must neither add series to
// colibri.upgrades and colibri.upgrade.duration nor name upgrade spans.
func TestObserveCornerRouteIsBoundedWhateverThePath(t *testing.T) {
	h := newHarness(t, observe.Options{})
	r := router.New(router.WithConfig(quiet), router.WithObserver(h.obs))
	router.WS(r, "/ws/{room}/", func(r *http.Request) (struct{}, router.Decision) {
		return struct{}{}, router.Reject(http.StatusForbidden, nil, "no")
	}, echo)
	srv := wstest.NewServer(t, h.obs.Handler(r))
	t.Cleanup(func() { shutdown(t, r) })
	base := "http" + strings.TrimPrefix(srv.URL(), "ws")

	for i := range 4 {
		for _, p := range []string{
			"/ws/client-chosen-%d",       // redirected to add the slash
			"/ws/./client-chosen-%d/",    // redirected to the clean path
			"/ws//client-chosen-%d/x/..", // likewise
			"/elsewhere/client-chosen-%d",
			"/ws/client-chosen-%d/", // matches: refused by the decision
		} {
			if st := upgradeGet(t, base, fmt.Sprintf(p, i)); st < 300 {
				t.Fatalf("%s: status %d", p, st)
			}
		}
	}
	m := h.collect(t)
	for _, name := range []string{"colibri.upgrades", "colibri.upgrade.duration"} {
		routes := map[string]bool{}
		switch d := m[name].(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				v, _ := p.Attributes.Value(observe.AttrRoute)
				routes[v.AsString()] = true
			}
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				v, _ := p.Attributes.Value(observe.AttrRoute)
				routes[v.AsString()] = true
			}
		default:
			t.Fatalf("%s is a %T", name, d)
		}
		for r := range routes {
			if r != "" && r != "/ws/{room}/" {
				t.Errorf("%s carries http.route %q: not a registered pattern", name, r)
			}
		}
		if !routes["/ws/{room}/"] || !routes[""] {
			t.Errorf("%s routes %v, want the pattern and \"\"", name, routes)
		}
	}
	for _, s := range h.spans.Ended() {
		if strings.Contains(s.Name(), "client-chosen") {
			t.Errorf("upgrade span named %q after the raw path", s.Name())
		}
	}
}
