package app_test

// Review of f2c5aa7: with the closure form (Config.WebSocket) a non-GET
// upgrade request goes to the application's handler after the hooks.

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// r5Upgrade is an upgrade request with method for path, plus extra lines.
func r5Upgrade(addr, method, path, extra string) string {
	return strings.Replace(reviewHSUpgrade(addr, path, extra), "GET", method, 1)
}

// r5Upgrades polls w for up to 300 ms and returns how many results it got.
func r5Upgrades(w *watcher) int {
	deadline := time.Now().Add(300 * time.Millisecond)
	for {
		w.mu.Lock()
		n := len(w.upgrades)
		w.mu.Unlock()
		if time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The closure form: HEAD and OPTIONS requests carrying the Upgrade fields
// pass each upgrade hook once and are answered by the application's
// handler as the same requests without Upgrade are (HEAD: no body, the
// GET's headers); GET still upgrades through the closure form.
func TestCornerClosureFormHeadAndOptionsUpgradeRunHooksOnceAndGetTheHandler(t *testing.T) {
	var hooks atomic.Int32
	plain := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		rw.Header().Set("X-Plain", req.Method)
		if req.Method == http.MethodOptions {
			rw.Header().Set("Allow", "GET, HEAD, OPTIONS")
			rw.WriteHeader(http.StatusNoContent)
			return
		}
		io.WriteString(rw, "plain page")
	})
	_, base, _ := start(t, plain, app.Config{
		UpgradeHooks: []app.UpgradeHook{func(_ http.ResponseWriter, req *http.Request) *http.Request {
			hooks.Add(1)
			return req
		}},
		WebSocket: router.Everywhere(nil, echo, router.WithConfig(wsconn.Config{Logger: quiet})),
	})
	addr := strings.TrimPrefix(base, "http://")

	for _, method := range []string{http.MethodHead, http.MethodOptions} {
		before := hooks.Load()
		resp := r5Head(t, addr, method, r5Upgrade(addr, method, "/a//b", ""))
		if n := hooks.Load() - before; n != 1 {
			t.Errorf("%s: the hook ran %d times, want 1", method, n)
		}
		if resp.Header.Get("X-Plain") != method || resp.Header.Get("Upgrade") != "" {
			t.Errorf("%s: %d X-Plain %q Upgrade %q, want the handler's answer", method, resp.StatusCode, resp.Header.Get("X-Plain"), resp.Header.Get("Upgrade"))
		}
		want := map[string]int{http.MethodHead: http.StatusOK, http.MethodOptions: http.StatusNoContent}[method]
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", method, resp.StatusCode, want)
		}
	}
	before := hooks.Load()
	resp, _ := reviewHSRoundTrip(t, addr, reviewHSUpgrade(addr, "/x", ""))
	if resp.StatusCode != http.StatusSwitchingProtocols || hooks.Load()-before != 1 {
		t.Errorf("GET upgrade: %d, hook ran %d times", resp.StatusCode, hooks.Load()-before)
	}
}

// r5Head sends req on a connection of its own and reads the response's
// head as the answer to method.
func r5Head(t *testing.T, addr, method, req string) *http.Response {
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
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// wsconn.Observer.Upgraded is called "once for every request that asks for
// a WebSocket upgrade (except, under the app's closure form, a non-GET
// one, which goes to the app's handler)": a router reports a POST carrying
// the Upgrade fields, the closure form does not.
func TestCornerClosureFormObserverIsToldOfANonGETUpgrade(t *testing.T) {
	plain := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) { io.WriteString(rw, "plain") })
	for _, form := range []string{"router", "closure"} {
		t.Run(form, func(t *testing.T) {
			w := &watcher{}
			var h http.Handler
			cfg := app.Config{Observer: w}
			if form == "router" {
				r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}), router.WithObserver(w))
				router.WS(r, "/x", nil, echo)
				r.Handle("/", plain)
				h = r
			} else {
				h = plain
				cfg.WebSocket = router.Everywhere(nil, echo, router.WithConfig(wsconn.Config{Logger: quiet}))
			}
			_, base, _ := start(t, h, cfg)
			addr := strings.TrimPrefix(base, "http://")
			resp, _ := reviewHSRoundTrip(t, addr, r5Upgrade(addr, http.MethodPost, "/x", "Content-Length: 0\r\n"))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST with Upgrade: %d", resp.StatusCode)
			}
			want := 1
			if form == "closure" {
				want = 0
			}
			if n := r5Upgrades(w); n != want {
				t.Errorf("the Observer was told of %d upgrade requests, want %d", n, want)
			}
		})
	}
}
