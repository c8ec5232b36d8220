package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// A complete application: a router with an HTTP route and a WebSocket
// route on one port, run until its context ends or SIGINT or SIGTERM
// arrives. Stopping sends 1001 Going Away to every open WebSocket.
func ExampleApp_Run() {
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

	listening := make(chan net.Addr, 1)
	a := app.New(r, app.Config{
		Addr:     "127.0.0.1:0", // a free port; OnListen says which
		Logger:   slog.New(slog.DiscardHandler),
		OnListen: func(addr net.Addr) { listening <- addr },
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	addr := <-listening

	resp, err := http.Get("http://" + addr.String() + "/healthz")
	if err == nil {
		fmt.Println(resp.StatusCode, exampleBody(resp))
	}
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr.String()+"/ws/echo", nil)
	if err != nil {
		fmt.Println(err)
		stop()
		<-done
		return
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, p, _ := c.ReadMessage()
	fmt.Println(string(p), "- open connections:", a.Connections())

	stop() // as SIGTERM would
	_, _, err = c.ReadMessage()
	fmt.Println(err)
	fmt.Println("Run returned", <-done)
	// Output:
	// 200 ok
	// hello - open connections: 1
	// websocket: close 1001 (going away): server shutting down
	// Run returned <nil>
}

// The closure form, for applications that have an http.Handler of their
// own and no ws routes: Config.WebSocket decides for every upgrade
// request, whatever its path. Declined upgrades and ordinary requests go
// to the handler.
func ExampleNew_closureForm() {
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "page "+r.URL.Path)
	})
	decide := func(r *http.Request) (string, router.Decision) {
		if r.URL.Query().Get("room") == "" {
			return "", router.Reject(http.StatusBadRequest, nil, "room required")
		}
		return r.URL.Query().Get("room"), router.Upgrade(nil)
	}
	handle := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		return out.WriteText(ctx, "joined "+s.Value)
	}
	base, stop := exampleRun(site, app.Config{
		WebSocket: router.Everywhere(decide, handle),
	})
	defer stop()

	c, _, err := websocket.DefaultDialer.Dial("ws://"+base+"/anywhere?room=go", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, p, _ := c.ReadMessage()
	fmt.Println(string(p))
	c.Close()
	_, resp, _ := websocket.DefaultDialer.Dial("ws://"+base+"/anywhere", nil)
	fmt.Println(resp.StatusCode, exampleBody(resp))
	// Output:
	// joined go
	// 400 room required
}

// Upgrade hooks see every upgrade request in order, before routing. Each
// returns the request to go on with (possibly with values added to its
// context) or nil when it has dealt with the request: by refusing it, or
// by hijacking the connection. Here a hook hands /legacy to another
// WebSocket library on the same port.
func ExampleUpgradeHook() {
	refuseBanned := func(w http.ResponseWriter, r *http.Request) *http.Request {
		if r.Header.Get("X-Client") == "banned" {
			http.Error(w, "go away", http.StatusForbidden)
			return nil
		}
		return r
	}
	var legacy sync.WaitGroup // the taken-over connections are ours to wait for
	takeOverLegacy := func(w http.ResponseWriter, r *http.Request) *http.Request {
		if r.URL.Path != "/legacy" {
			return r
		}
		up := websocket.Upgrader{}
		c, err := up.Upgrade(w, r, nil) // hijacks; gorilla answers errors itself
		if err != nil {
			return nil
		}
		legacy.Go(func() {
			defer c.Close()
			if typ, p, err := c.ReadMessage(); err == nil {
				c.WriteMessage(typ, append([]byte("legacy: "), p...))
			}
		})
		return nil
	}

	r := router.New()
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		return out.WriteText(ctx, "colibri")
	})
	base, stop := exampleRun(r, app.Config{
		UpgradeHooks: []app.UpgradeHook{refuseBanned, takeOverLegacy},
	})
	defer stop()

	c, _, err := websocket.DefaultDialer.Dial("ws://"+base+"/legacy", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	_, p, _ := c.ReadMessage()
	fmt.Println(string(p))
	c.Close()
	legacy.Wait()

	c, _, err = websocket.DefaultDialer.Dial("ws://"+base+"/ws", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, p, _ = c.ReadMessage()
	fmt.Println(string(p))
	c.Close()

	_, resp, _ := websocket.DefaultDialer.Dial("ws://"+base+"/ws", http.Header{"X-Client": {"banned"}})
	fmt.Println(resp.StatusCode, exampleBody(resp))
	// Output:
	// legacy: hi
	// colibri
	// 403 go away
}

// exampleRun runs app.New(h, cfg) on a free loopback port, without logs,
// until stop is called, and returns the host:port it listens on.
func exampleRun(h http.Handler, cfg app.Config) (addr string, stop func()) {
	listening := make(chan net.Addr, 1)
	cfg.Addr = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.OnListen = func(a net.Addr) { listening <- a }
	a := app.New(h, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case got := <-listening:
		addr = got.String()
	case err := <-done:
		panic(err)
	}
	return addr, func() {
		cancel()
		<-done
	}
}

func exampleBody(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return strings.TrimSpace(string(b))
}
