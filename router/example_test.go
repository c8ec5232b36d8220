package router_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// One router answers HTTP routes and WebSocket routes on the same port. A
// plain GET to a WebSocket-only path gets 426 Upgrade Required.
func ExampleNew() {
	r := router.New()
	r.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	})
	router.WS(r, "/ws/echo", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		for m := range in.Messages(0) {
			if err := out.WriteMessage(ctx, m); err != nil {
				return err
			}
		}
		return in.Err()
	})

	base, stop := exampleServe(r)
	defer stop()

	fmt.Println(exampleGet(base + "/healthz"))
	fmt.Println(exampleGet(base + "/ws/echo"))
	c, _, err := websocket.DefaultDialer.Dial(exampleWS(base, "/ws/echo"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	c.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, p, _ := c.ReadMessage()
	fmt.Println(string(p))
	exampleHangUp(c)
	// Output:
	// 200 ok
	// 426 this endpoint speaks WebSocket only: send Upgrade: websocket
	// hello
}

type chatMember struct{ Name, Room string }

// A ws route's shouldUpgrade sees the request after the route's
// middleware and decides: Upgrade hands a value to the handler and may add
// headers to the 101 response; Reject answers with an HTTP status and a
// body, and no socket is ever opened.
func ExampleWS() {
	join := func(req *http.Request) (chatMember, router.Decision) {
		name := req.URL.Query().Get("username")
		if name == "" {
			return chatMember{}, router.Reject(http.StatusBadRequest, nil, "username required")
		}
		room := req.PathValue("room")
		return chatMember{Name: name, Room: room}, router.Upgrade(http.Header{"X-Room": {room}})
	}
	chat := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[chatMember]) error {
		return out.WriteText(ctx, "welcome to "+s.Value.Room+", "+s.Value.Name)
	}
	r := router.New()
	router.WS(r, "/ws/chat/{room}", join, chat)

	base, stop := exampleServe(r)
	defer stop()

	_, resp, _ := websocket.DefaultDialer.Dial(exampleWS(base, "/ws/chat/lobby"), nil)
	fmt.Println(resp.StatusCode, exampleBody(resp))

	c, resp, err := websocket.DefaultDialer.Dial(exampleWS(base, "/ws/chat/lobby?username=grace"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.StatusCode, "X-Room:", resp.Header.Get("X-Room"))
	_, p, _ := c.ReadMessage()
	fmt.Println(string(p))
	_, _, err = c.ReadMessage() // the handler returned nil
	fmt.Println(err)
	c.Close()
	// Output:
	// 400 username required
	// 101 X-Room: lobby
	// welcome to lobby, grace
	// websocket: close 1000 (normal)
}

// Middleware added in a group wraps only the group's routes. Here
// authentication runs before the upgrade decision: a request without a
// valid token gets 401 and never becomes a WebSocket, and the user that
// the middleware found reaches the handler's context.
func ExampleRouter_Group() {
	verify := func(_ context.Context, token string) (string, error) {
		if token == "t0k3n" {
			return "alice", nil
		}
		return "", errors.New("unknown token")
	}
	r := router.New()
	r.Use(middleware.RequestID) // every request
	r.Group(func(r *router.Router) {
		r.Use(middleware.Bearer(verify)) // only the routes of this group
		router.WS(r, "/ws/private", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
			user, _ := middleware.UserFrom(ctx)
			return out.WriteText(ctx, "hello "+user)
		})
	})

	base, stop := exampleServe(r)
	defer stop()
	url := exampleWS(base, "/ws/private")

	_, resp, _ := websocket.DefaultDialer.Dial(url, nil)
	fmt.Println(resp.StatusCode, exampleBody(resp))

	c, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer t0k3n"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, p, _ := c.ReadMessage()
	fmt.Println(string(p))
	exampleHangUp(c)
	// Output:
	// 401 unauthorized
	// hello alice
}

// DontUpgrade lets the request go on as ordinary HTTP: an HTTP route on the
// same path answers it. Here live updates can be switched off, and clients
// then get the snapshot that plain GET requests get.
func ExampleDontUpgrade() {
	var live atomic.Bool
	r := router.New()
	r.HandleFunc("GET /scores", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "snapshot: 1-0")
	})
	router.WS(r, "/scores", func(*http.Request) (struct{}, router.Decision) {
		if !live.Load() {
			return struct{}{}, router.DontUpgrade()
		}
		return struct{}{}, router.Upgrade(nil)
	}, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return out.WriteText(ctx, "live: 1-0")
	})

	base, stop := exampleServe(r)
	defer stop()
	url := exampleWS(base, "/scores")

	_, resp, _ := websocket.DefaultDialer.Dial(url, nil)
	fmt.Println(resp.StatusCode, exampleBody(resp))

	live.Store(true)
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, p, _ := c.ReadMessage()
	fmt.Println(string(p))
	c.Close()
	// Output:
	// 200 snapshot: 1-0
	// live: 1-0
}

// The route speaks two versions of its protocol. The client's first
// choice among them is negotiated; a client that speaks neither is
// refused before the upgrade.
func ExampleWithSubprotocols() {
	versions := []string{"v2.chat", "v1.chat"}
	decide := func(req *http.Request) (struct{}, router.Decision) {
		if handshake.SelectSubprotocol(req, versions) == "" {
			return struct{}{}, router.Reject(http.StatusBadRequest, nil, "speak v1.chat or v2.chat")
		}
		return struct{}{}, router.Upgrade(nil)
	}
	r := router.New()
	router.WS(r, "/ws", decide, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return out.WriteText(ctx, "speaking "+s.Subprotocol())
	}, router.WithSubprotocols(versions...))

	base, stop := exampleServe(r)
	defer stop()

	for _, offer := range [][]string{{"v1.chat", "v2.chat"}, {"v3.chat"}} {
		d := websocket.Dialer{Subprotocols: offer}
		c, resp, err := d.Dial(exampleWS(base, "/ws"), nil)
		if err != nil {
			fmt.Println(resp.StatusCode, exampleBody(resp))
			continue
		}
		_, p, _ := c.ReadMessage()
		fmt.Println(string(p))
		c.Close()
	}
	// Output:
	// speaking v1.chat
	// 400 speak v1.chat or v2.chat
}

// Everywhere is the closure form: one shouldUpgrade and handler for every
// upgrade request, whatever its path, in front of an ordinary handler that
// gets everything else. app.Config.WebSocket takes its result and does
// what this example does by hand.
func ExampleEverywhere() {
	decide := func(req *http.Request) (string, router.Decision) {
		if strings.HasPrefix(req.URL.Path, "/static/") {
			return "", router.DontUpgrade()
		}
		return req.URL.Path, router.Upgrade(nil)
	}
	handle := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		return out.WriteText(ctx, "socket for "+s.Value)
	}
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "page "+r.URL.Path)
	})

	r := router.New()
	router.Everywhere(decide, handle)(r)
	r.Handle("/", site)

	base, stop := exampleServe(r)
	defer stop()

	c, _, err := websocket.DefaultDialer.Dial(exampleWS(base, "/docs/chat"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, p, _ := c.ReadMessage()
	fmt.Println(string(p))
	c.Close()
	_, resp, _ := websocket.DefaultDialer.Dial(exampleWS(base, "/static/app.js"), nil)
	fmt.Println(resp.StatusCode, exampleBody(resp))
	fmt.Println(exampleGet(base + "/docs/chat"))
	// Output:
	// socket for /docs/chat
	// 200 page /static/app.js
	// 200 page /docs/chat
}

// exampleServe serves r on a loopback port; stop closes the router's
// WebSocket connections with 1001 and then the server.
func exampleServe(r *router.Router) (base string, stop func()) {
	srv := httptest.NewServer(r)
	return srv.URL, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = r.Shutdown(ctx)
		srv.Close()
		http.DefaultClient.CloseIdleConnections()
	}
}

func exampleWS(base, path string) string { return "ws" + strings.TrimPrefix(base, "http") + path }

// exampleGet returns the status and body of a plain GET.
func exampleGet(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(resp.StatusCode, " ", exampleBody(resp))
}

func exampleBody(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return strings.TrimSpace(string(b))
}

// exampleHangUp closes c as a browser does: CLOSE 1000, wait for the
// server's CLOSE, close the transport.
func exampleHangUp(c *websocket.Conn) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	c.Close()
}
