package router_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/internal/h2test"
	"github.com/colibri-ws/colibri/router"
	gorilla "github.com/gorilla/websocket"
)

// rvrw3Three builds outer -> middle -> inner, each with a middleware that
// records it ran, the ws route in the innermost router.
func rvrw3Three(t *testing.T, opts ...[]router.Option) (outer, middle, inner *router.Router, ran chan string) {
	t.Helper()
	ran = make(chan string, 16)
	mw := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r)
				ran <- name
			})
		}
	}
	o := func(i int) []router.Option {
		if i < len(opts) {
			return append([]router.Option{router.WithConfig(quiet)}, opts[i]...)
		}
		return []router.Option{router.WithConfig(quiet)}
	}
	inner = router.New(o(2)...)
	inner.Use(mw("inner"), func(next http.Handler) http.Handler { return http.MaxBytesHandler(next, 64) })
	router.WS(inner, "/a/b/ws", nil, rvEcoEcho)
	middle = router.New(o(1)...)
	middle.Use(mw("middle"), func(next http.Handler) http.Handler { return http.MaxBytesHandler(next, 64) })
	middle.Handle("/a/b/", inner)
	outer = router.New(o(0)...)
	outer.Use(mw("outer"), func(next http.Handler) http.Handler { return http.MaxBytesHandler(next, 64) })
	outer.Handle("/a/", middle)
	t.Cleanup(func() { rvrw2Shut(inner); rvrw2Shut(middle); rvrw2Shut(outer) })
	return outer, middle, inner, ran
}

func rvrw3WaitRan(t *testing.T, ran chan string) {
	t.Helper()
	seen := map[string]bool{}
	for len(seen) < 3 {
		select {
		case n := <-ran:
			seen[n] = true
		case <-time.After(3 * time.Second):
			t.Fatalf("middleware still running with the socket open; returned: %v", seen)
		}
	}
}

// Three routers nested, HTTP/1.1: the WebSocket of the innermost opens,
// passes more than every body limit, and every router's middleware
// returns while it is open.
func TestThreeLevelsH1(t *testing.T) {
	outer, _, _, ran := rvrw3Three(t)
	base := serve(t, outer)
	c, _, err := dial(t, "ws"+strings.TrimPrefix(base, "http")+"/a/b/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5 {
		rvEcoEchoOnce(t, c, strings.Repeat("y", 100+i))
	}
	rvrw3WaitRan(t, ran)
	if n := outer.Connections(); n != 1 {
		t.Fatalf("outer.Connections() = %d, want 1 (the outermost router counts a nested WebSocket)", n)
	}
}

// Same over HTTP/2: the outermost router serves the stream after every
// router's middleware returned.
func TestThreeLevelsH2(t *testing.T) {
	outer, _, _, ran := rvrw3Three(t)
	h := h2pServe(t, outer, nil)
	s, _ := h2pDial(t, h, "/a/b/ws")
	defer s.CloseNow()
	for i := range 5 {
		h2pEcho(t, s, strings.Repeat("z", 100+i))
	}
	rvrw3WaitRan(t, ran)
	if n := outer.Connections(); n != 1 {
		t.Fatalf("outer.Connections() = %d, want 1 (the outermost router counts a nested WebSocket)", n)
	}
}

// Three routers, each with its own Observer and ws routes of its own: each
// reports the one upgrade once, and none reports the accepted upgrade as
// refused (the client got 101).
func TestThreeLevelsObserversEachH1(t *testing.T) {
	rvrw3ObserversEach(t, "h1")
}

// The same over HTTP/2.
func TestThreeLevelsObserversEachH2(t *testing.T) { rvrw3ObserversEach(t, "h2") }

func rvrw3ObserversEach(t *testing.T, proto string) {
	{
		{
			chs := []gdrResults{make(gdrResults, 8), make(gdrResults, 8), make(gdrResults, 8)}
			outer, middle, _, _ := rvrw3Three(t,
				[]router.Option{router.WithObserver(chs[0])},
				[]router.Option{router.WithObserver(chs[1])},
				[]router.Option{router.WithObserver(chs[2])})
			router.WS(outer, "/own", nil, rvEcoEcho)
			router.WS(middle, "/own2", nil, rvEcoEcho)
			if proto == "h1" {
				base := serve(t, outer)
				c, _, err := dial(t, "ws"+strings.TrimPrefix(base, "http")+"/a/b/ws", nil)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				rvEcoEchoOnce(t, c, "x")
			} else {
				h := h2pServe(t, outer, nil)
				s, _ := h2pDial(t, h, "/a/b/ws")
				defer s.CloseNow()
				h2pEcho(t, s, "x")
			}
			for i, name := range []string{"outer", "middle", "inner"} {
				got := r7Drain(chs[i], 300*time.Millisecond)
				if len(got) != 1 {
					t.Errorf("%s Observer: %d results, want 1: %+v", name, len(got), got)
					continue
				}
				if !got[0].Accepted || got[0].Status != http.StatusSwitchingProtocols && got[0].Status != http.StatusOK {
					t.Errorf("%s Observer told %+v for an upgrade the client saw accepted", name, got[0])
				}
			}
		}
	}
}

// A nested WebSocket counts among the outermost router's connections
// (HTTP/2, where the outer router serves the stream): the inner and middle
// routers' Shutdown return at once and leave it open, the outer's closes
// it with 1001.
func TestNestedShutdownInnerH2(t *testing.T) {
	outer, middle, inner, _ := rvrw3Three(t)
	h := h2pServe(t, outer, nil)
	s, _ := h2pDial(t, h, "/a/b/ws")
	defer s.CloseNow()
	h2pEcho(t, s, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, r := range []*router.Router{inner, middle} {
		if _, err := r.Shutdown(ctx); err != nil {
			t.Fatalf("inner/middle Shutdown: %v", err)
		}
	}
	h2pEcho(t, s, "still open")
	if n := outer.Connections(); n != 1 {
		t.Errorf("outer.Connections() = %d, want the nested WebSocket", n)
	}
	go func() { _, _ = outer.Shutdown(ctx) }()
	done := make(chan error, 1)
	go func() {
		for {
			if _, _, err := s.ReadMessage(); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		var ce *h2test.CloseError
		if !errors.As(err, &ce) || ce.Code != 1001 {
			t.Fatalf("after outer Shutdown: %v, want close 1001", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("outer Shutdown did not close the nested HTTP/2 WebSocket")
	}
}

// docs/routing.md "Serving without the app package": call r.Shutdown, which
// "sends 1001 to every open WebSocket at once"; r.Connections "returns the
// number of open WebSockets". Served through outer with a router mounted
// in it (the mount paragraph: the hand-off goes to the outermost router),
// outer.Shutdown must close the mounted router's WebSocket too, or the
// docs must say to shut every mounted router down.
func TestOuterShutdownClosesMountedWebSocket(t *testing.T) {
	inner := router.New(router.WithConfig(quiet))
	router.WS(inner, "/in/ws", nil, rvEcoEcho)
	outer := router.New(router.WithConfig(quiet))
	outer.Handle("/in/", inner)
	base := reviewCBServe(t, outer)
	t.Cleanup(func() { rvrw2Shut(inner) })
	c, _, err := dial(t, "ws"+strings.TrimPrefix(base, "http")+"/in/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rvEcoEchoOnce(t, c, "x")
	if n := outer.Connections(); n != 1 {
		t.Errorf("outer.Connections() = %d with the mounted router's WebSocket open, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	go func() { _, _ = outer.Shutdown(ctx) }()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _, err = c.ReadMessage()
	if !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Fatalf("after outer.Shutdown the mounted router's WebSocket read %v, want close 1001", err)
	}
}
