package interop

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// The test app is a colibri application built from the public API, as a
// user would build one, with a route per behaviour under test:
//
//	/echo              echoes every message, up to 16 MiB
//	/limit             echoes messages up to 64 KiB; a larger one is 1009
//	/deflate           /echo with permessage-deflate, no context takeover
//	/deflate-takeover  /echo with permessage-deflate and context takeover
//	/proto             speaks v2.colibri and v1.colibri; says which it got
//	/ping              pings the client every 100 ms; once a PONG answered
//	                   one, says "pong received"
//	/close             a text "CODE REASON" makes the server close with
//	                   them
//	/chat/{room}       a chat room: every message goes to every member as
//	                   "NAME: TEXT" (?name=NAME)
//
// Each connection may carry ?id=ID; the app then reports how it ended
// (closes).
type testApp struct {
	wsconn.NopObserver // upgrades are not watched

	base  string // ws://127.0.0.1:PORT
	stop  context.CancelFunc
	done  chan error
	chat  *chatRooms
	logs  *testlog.Buffer
	mu    sync.Mutex
	ended map[string]chan wsconn.CloseInfo
}

const (
	echoLimit  = 16 << 20
	smallLimit = 64 << 10
)

// startApp runs the test app on a free loopback port until the test ends
// (or until shutdown is called).
func startApp(t *testing.T) *testApp {
	t.Helper()
	a := &testApp{chat: &chatRooms{rooms: map[string]map[*wsconn.Outbound]bool{}}, logs: &testlog.Buffer{}, ended: map[string]chan wsconn.CloseInfo{}}
	logger := slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := func(c wsconn.Config) router.Option {
		c.Logger = logger
		c.Observer = a
		return router.WithConfig(c)
	}
	r := router.New()
	any := router.WithAnyOrigin() // the browser's page comes from elsewhere
	router.WS(r, "/echo", nil, echo, any, cfg(wsconn.Config{MaxMessageSize: echoLimit}))
	router.WS(r, "/limit", nil, echo, any, cfg(wsconn.Config{MaxMessageSize: smallLimit}))
	router.WS(r, "/deflate", nil, echo, any, cfg(wsconn.Config{MaxMessageSize: echoLimit,
		Compression: wsconn.Compression{Enabled: true}}))
	router.WS(r, "/deflate-takeover", nil, echo, any, cfg(wsconn.Config{MaxMessageSize: echoLimit,
		Compression: wsconn.Compression{Enabled: true, ContextTakeover: true}}))
	router.WS(r, "/proto", nil, sayProtocol, any, router.WithSubprotocols("v2.colibri", "v1.colibri"), cfg(wsconn.Config{}))
	router.WS(r, "/ping", nil, awaitPong, any, cfg(wsconn.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 10 * time.Second}))
	router.WS(r, "/close", nil, closeOnRequest, any, cfg(wsconn.Config{}))
	router.WS(r, "/chat/{room}", a.chat.join, a.chat.serve, any, cfg(wsconn.Config{Compression: wsconn.Compression{Enabled: true}}))

	addr := make(chan net.Addr, 1)
	srv := app.New(r, app.Config{Addr: "127.0.0.1:0", Logger: logger, NoSignals: true, ShutdownTimeout: 10 * time.Second,
		OnListen: func(x net.Addr) { addr <- x }})
	ctx, cancel := context.WithCancel(context.Background())
	a.stop, a.done = cancel, make(chan error, 1)
	go func() { a.done <- srv.Run(ctx) }()
	select {
	case x := <-addr:
		a.base = "ws://" + x.String()
	case err := <-a.done:
		t.Fatalf("test app: %v", err)
	}
	t.Cleanup(func() {
		if err := a.shutdown(); err != nil {
			t.Errorf("test app: %v", err)
		}
	})
	return a
}

// shutdown stops the app as SIGTERM would (1001 to every socket) and
// returns Run's error.
func (a *testApp) shutdown() error {
	a.stop()
	if err, ok := <-a.done; ok {
		close(a.done)
		return err
	}
	return nil
}

// url returns the WebSocket URL of path on the app, for connection id.
func (a *testApp) url(path, id string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return a.base + path + sep + "id=" + id
}

// closed waits for the end of connection id and returns how it ended.
func (a *testApp) closed(t *testing.T, id string) wsconn.CloseInfo {
	t.Helper()
	select {
	case info := <-a.endedChan(id):
		return info
	case <-time.After(15 * time.Second):
		t.Fatalf("connection %s did not end; logs:\n%s", id, a.logs)
		return wsconn.CloseInfo{}
	}
}

func (a *testApp) endedChan(id string) chan wsconn.CloseInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := a.ended[id]
	if !ok {
		ch = make(chan wsconn.CloseInfo, 1)
		a.ended[id] = ch
	}
	return ch
}

// ConnOpened makes the app a wsconn.Observer that reports each
// connection's end under its ?id.
func (a *testApp) ConnOpened(c *wsconn.Conn) wsconn.ConnObserver {
	if c.Request() == nil {
		return nil
	}
	id := c.Request().URL.Query().Get("id")
	if id == "" {
		return nil
	}
	return connEnd{ch: a.endedChan(id)}
}

// connEnd reports a connection's CloseInfo and ignores its other events.
type connEnd struct {
	wsconn.NopObserver
	ch chan wsconn.CloseInfo
}

func (e connEnd) Closed(info wsconn.CloseInfo) { e.ch <- info }

type session = wsconn.Session[struct{}]

func echo(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *session) error {
	for m := range in.Messages(0) {
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

func sayProtocol(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
	if err := out.WriteText(ctx, "subprotocol "+s.Subprotocol()); err != nil {
		return err
	}
	return echo(ctx, in, out, s)
}

// awaitPong waits for the keep-alive's first answered PING (Conn.RTT is
// set only by a PONG that carries the PING's payload) and says so.
func awaitPong(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *session) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.RTT() == 0 {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
	if err := out.WriteText(ctx, "pong received"); err != nil {
		return err
	}
	return echo(ctx, in, out, s)
}

// closeOnRequest closes with the code and reason of the first message,
// "CODE REASON".
func closeOnRequest(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *session) error {
	for m := range in.Messages(0) {
		code, reason, _ := strings.Cut(m.Text(), " ")
		n, err := strconv.Atoi(code)
		if err != nil {
			return err
		}
		return &wsconn.CloseError{Code: frames.CloseCode(n), Reason: reason}
	}
	return in.Err()
}

// chatRooms is the chat of the test app.
type chatRooms struct {
	mu    sync.Mutex
	rooms map[string]map[*wsconn.Outbound]bool
}

type member struct{ name, room string }

func (c *chatRooms) join(req *http.Request) (member, router.Decision) {
	name := req.URL.Query().Get("name")
	if name == "" {
		return member{}, router.Reject(http.StatusBadRequest, nil, "name required")
	}
	return member{name: name, room: req.PathValue("room")}, router.Upgrade(nil)
}

func (c *chatRooms) serve(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[member]) error {
	c.mu.Lock()
	if c.rooms[s.Value.room] == nil {
		c.rooms[s.Value.room] = map[*wsconn.Outbound]bool{}
	}
	c.rooms[s.Value.room][out] = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.rooms[s.Value.room], out)
		c.mu.Unlock()
	}()
	for m := range in.Messages(0) {
		line := s.Value.name + ": " + m.Text()
		c.mu.Lock()
		var to []*wsconn.Outbound
		for o := range c.rooms[s.Value.room] {
			to = append(to, o)
		}
		c.mu.Unlock()
		for _, o := range to {
			if err := o.WriteText(ctx, line); err != nil && o == out {
				return err
			}
		}
	}
	return in.Err()
}

// members returns the number of connections in room.
func (c *chatRooms) members(room string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.rooms[room])
}
