package app_test

// Reject with response headers through the app
// package: its limit, its hooks and the closure form.

import (
	"io"
	"net/http"
	"reflect"
	"sync"
	"testing"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// rvtChallenge is one header map shared by every refusal, as an
// application would keep it in a variable.
var rvtChallenge = http.Header{"Www-Authenticate": {`Bearer realm="chat"`}, "Cache-Control": {"no-store"}}

// rvtDialErr dials url with gorilla and returns the refusal (the
// connection, if any, is closed).
func rvtDialErr(t *testing.T, url string, h http.Header) *http.Response {
	t.Helper()
	c, resp, err := gorilla.DefaultDialer.Dial(url, h)
	if c != nil {
		c.Close()
		t.Fatalf("%s upgraded", url)
	}
	if resp == nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp
}

// Refusals hold no place under the App's limit, even many at once sharing
// one header map, which they leave as it was; each carries the hook's
// field and the decision's, once. At the limit the App answers 503 before
// the decision runs (documented), and once the connection is gone the
// decision refuses again.
func TestAppRejectUnderTheLimit(t *testing.T) {
	snapshot := rvtChallenge.Clone()
	rt := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(rt, "/ws", func(r *http.Request) (struct{}, router.Decision) {
		if r.Header.Get("Authorization") != "Bearer ok" {
			return struct{}{}, router.Reject(http.StatusUnauthorized, rvtChallenge, "token required")
		}
		return struct{}{}, router.Upgrade(nil)
	}, echo)
	hook := func(w http.ResponseWriter, r *http.Request) *http.Request {
		w.Header().Set("X-Hook", "seen")
		return r
	}
	a, base, _ := start(t, rt, app.Config{MaxConnections: 1, UpgradeHooks: []app.UpgradeHook{hook}})
	url := ws(base, "/ws")

	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			c, resp, err := gorilla.DefaultDialer.Dial(url, nil)
			if c != nil {
				c.Close()
				t.Error("upgraded without a token")
				return
			}
			if resp == nil {
				t.Error(err)
				return
			}
			if resp.StatusCode != http.StatusUnauthorized || len(resp.Header.Values("Www-Authenticate")) != 1 ||
				resp.Header.Get("X-Hook") != "seen" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("refusal %d %v", resp.StatusCode, resp.Header)
			}
		})
	}
	wg.Wait()
	if !reflect.DeepEqual(rvtChallenge, snapshot) {
		t.Errorf("the shared header map changed: %v, was %v", rvtChallenge, snapshot)
	}
	if n := a.Connections(); n != 0 {
		t.Fatalf("%d places held after refusals", n)
	}

	c, _, err := gorilla.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer ok"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := a.Connections(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	// At the limit a rejection is still a rejection (it would not have
	// become a connection); an upgrade gets the App's 503.
	if resp := rvtDialErr(t, url, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("at the limit, unauthenticated: %d, want the route's 401", resp.StatusCode)
	}
	resp := rvtDialErr(t, url, http.Header{"Authorization": {"Bearer ok"}})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("at the limit: %d %v, want the App's 503 with Retry-After", resp.StatusCode, resp.Header)
	}
	c.Close()
	rvtWaitFor(t, "the closed connection's place", func() bool { return a.Connections() == 0 })
	if resp := rvtDialErr(t, url, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("below the limit again: %d, want 401", resp.StatusCode)
	}
}

// The closure form's decision refuses with its headers too, and a plain
// request goes to the application's handler untouched by them.
func TestAppClosureFormRejectCarriesHeaders(t *testing.T) {
	plain := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "page") })
	_, base, stop := start(t, plain, app.Config{
		WebSocket: router.Everywhere(func(*http.Request) (struct{}, router.Decision) {
			return struct{}{}, router.Reject(http.StatusTooManyRequests, http.Header{"Retry-After": {"9"}}, "busy")
		}, echo),
	})
	resp := rvtDialErr(t, ws(base, "/any/where"), nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "9" {
		t.Errorf("closure form refusal %d %v, want 429 with Retry-After 9", resp.StatusCode, resp.Header)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "busy\n" {
		t.Errorf("body %q", body)
	}
	r, err := http.Get(base + "/any/where")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if string(b) != "page" || r.Header.Get("Retry-After") != "" {
		t.Errorf("plain request %q %v", b, r.Header)
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}
