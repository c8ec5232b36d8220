package wstest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
	"github.com/colibri-ws/colibri/wstest"
)

// TestRouterRoute tests a ws route of a colibri router, the way an
// application's tests do.
func TestRouterRoute(t *testing.T) {
	type member struct{ name, room string }
	join := func(req *http.Request) (member, router.Decision) {
		name := req.URL.Query().Get("username")
		if name == "" {
			return member{}, router.Reject(http.StatusBadRequest, nil, "username required")
		}
		return member{name, req.PathValue("room")}, router.Upgrade(nil)
	}
	chat := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[member]) error {
		if err := out.WriteText(ctx, s.Value.name+" joined "+s.Value.room); err != nil {
			return err
		}
		for m := range in.Messages(0) {
			if m.Text() == "leave" {
				return &wsconn.CloseError{Code: 4000, Reason: "bye, " + s.Value.name}
			}
		}
		return in.Err()
	}
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet}))
	router.WS(r, "/ws/chat/{room}", join, chat)
	srv := wstest.NewMemoryServer(t, r)

	c := srv.Dial(t, "/ws/chat/lobby?username=ann", nil)
	c.ExpectText("ann joined lobby")
	c.SendText("leave")
	c.ExpectClose(4000, "bye, ann")

	wantFailure(t, failure(t, func(tb testing.TB) { srv.Dial(tb, "/ws/chat/lobby", nil) }),
		"wstest: dial /ws/chat/lobby: wsclient: handshake refused: 400 Bad Request: username required\nresponse body:\nusername required\n")

	// Sessions run in the router's group, not in ServeHTTP; Close waits
	// for them too.
	open := srv.Dial(t, "/ws/chat/attic?username=bob", nil)
	open.ExpectText("bob joined attic")
	// ann's session leaves the group just after it closed the transport,
	// which ExpectClose saw: give it that moment.
	for deadline := time.Now().Add(5 * time.Second); r.Connections() != 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if r.Connections() != 1 {
		t.Fatalf("%d sessions open, want 1", r.Connections())
	}
	srv.Close()
	if n := r.Connections(); n != 0 {
		t.Fatalf("%d sessions still open after Close", n)
	}
}
