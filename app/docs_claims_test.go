package app_test

// Claims of docs/routing.md that no other test pins, checked through a
// loopback socket with gorilla/websocket.

import (
	"context"
	"io"
	"net/http"
	"testing"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// docs/routing.md ("The closure form"): the upgrades the decision declines
// go to the application's handler, except that "a declined upgrade to a
// path ServeMux would clean, such as /a//b, gets its redirect instead".
func TestClosureFormDeclinedUncleanPathIsRedirected(t *testing.T) {
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page "+r.URL.Path) })
	decline := func(*http.Request) (struct{}, router.Decision) { return struct{}{}, router.DontUpgrade() }
	handle := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return nil
	}
	_, base, _ := start(t, site, app.Config{WebSocket: router.Everywhere(decline, handle)})
	for _, tc := range []struct {
		path, location, body string
		status               int
	}{
		{"/a/b", "", "page /a/b", http.StatusOK},
		{"/a//b", "/a/b", "", http.StatusTemporaryRedirect}, // ServeMux's redirect
	} {
		c, resp, err := gorilla.DefaultDialer.Dial(ws(base, tc.path), nil)
		if err == nil {
			c.Close()
			t.Fatalf("%s: upgraded, want declined", tc.path)
		}
		if resp == nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location || (tc.body != "" && string(b) != tc.body) {
			t.Errorf("declined upgrade to %s: %d Location %q %q, want %d %q %q",
				tc.path, resp.StatusCode, resp.Header.Get("Location"), b, tc.status, tc.location, tc.body)
		}
	}
}
