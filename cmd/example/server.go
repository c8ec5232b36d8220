package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/middleware"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

//go:embed static
var static embed.FS

// options configure the example server.
type options struct {
	Token  string       // bearer token for the protected routes
	NATS   string       // NATS URL for rooms across instances; "" for in-process
	Logger *slog.Logger // the rooms' own lines; the rest logs to the app's
}

// server is the example's router with what its handlers share.
type server struct {
	Router *router.Router
	rooms  *rooms
	online atomic.Int64 // chat members connected to this instance
	log    *slog.Logger
	stats  *metrics // served at /metrics
}

func newServer(o options) (*server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	stats, err := newMetrics()
	if err != nil {
		return nil, err
	}
	rm, err := newRooms(o.NATS, o.Logger, stats.obs.Dropped)
	if err != nil {
		_ = stats.close()
		return nil, err
	}
	if err := stats.watchRooms(rm.hub); err != nil {
		rm.close()
		_ = stats.close()
		return nil, err
	}
	s := &server{rooms: rm, log: o.Logger, stats: stats}
	// The connections and the middleware log to the app's Config.Logger:
	// none of them is given a logger of its own.
	r := router.New(router.WithConfig(wsconn.Config{MaxMessageSize: 4 << 20}),
		router.WithObserver(stats.obs))
	r.Use(middleware.RequestID, middleware.Log(nil), middleware.Recover(nil))

	files, _ := fs.Sub(static, "static")
	r.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(files)))
	r.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
		http.ServeFileFS(w, req, files, "index.html")
	})
	r.Handle("GET /metrics", stats.handler)
	r.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})

	// Benchmarks and conformance tools use the echo route; it accepts
	// permessage-deflate so that they can exercise compression too.
	router.WS(r, "/ws/echo", nil, echo, router.WithAnyOrigin(), router.WithConfig(wsconn.Config{
		MaxMessageSize: 16 << 20,
		Compression:    wsconn.Compression{Enabled: true},
	}))
	router.WS(r, "/ws/chat/{room}", joinRoom, s.chat)

	// Protected routes: a bearer token in the Authorization header or, for
	// browsers, which cannot set headers on a WebSocket, in ?access_token=.
	r.Group(func(r *router.Router) {
		r.Use(middleware.BearerWith(tokenVerifier(o.Token), middleware.BearerOptions{QueryParam: "access_token"}))
		r.HandleFunc("GET /api/stats", s.statsJSON)
		router.WS(r, "/ws/stats", nil, s.statsFeed)
	})
	s.Router = r
	return s, nil
}

// Close releases the rooms' broker connection and stops the metrics.
func (s *server) Close() {
	s.rooms.close()
	_ = s.stats.close()
}

func tokenVerifier(token string) func(ctx context.Context, t string) (string, error) {
	return func(_ context.Context, t string) (string, error) {
		if token == "" || t != token {
			return "", errors.New("unknown token")
		}
		return "operator", nil
	}
}

// echo sends every message back with its type: text as text, binary as
// binary.
func echo(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
	for m := range in.Messages(16 << 20) {
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

// member is what the chat's upgrade decision hands to the handler.
type member struct {
	Name string
	Room string
}

var roomName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// joinRoom refuses a chat request without a usable username, before any
// WebSocket exists.
func joinRoom(r *http.Request) (member, router.Decision) {
	name := r.URL.Query().Get("username")
	switch {
	case name == "":
		return member{}, router.Reject(http.StatusBadRequest, nil, "username required")
	case utf8.RuneCountInString(name) > 32 || !utf8.ValidString(name):
		return member{}, router.Reject(http.StatusBadRequest, nil, "username too long")
	case !roomName.MatchString(r.PathValue("room")):
		return member{}, router.Reject(http.StatusBadRequest, nil, "room names are 1-32 letters, digits, _ or -")
	}
	return member{Name: name, Room: r.PathValue("room")}, router.Upgrade(nil)
}

// chatLine is the JSON the page receives.
type chatLine struct {
	From   string `json:"from,omitempty"`
	Text   string `json:"text,omitempty"`
	System string `json:"system,omitempty"`
}

func encode(l chatLine) messages.Message {
	b, _ := json.Marshal(l)
	return messages.Message{Kind: messages.KindText, Payload: b}
}

// statsJSON reports this instance's chat members.
func (s *server) statsJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]int64{"chat_members": s.online.Load()})
}

// statsFeed pushes the member count every second: a handler that only
// writes, while colibri answers the peer's pings and sees its close.
func (s *server) statsFeed(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		b, _ := json.Marshal(map[string]int64{"chat_members": s.online.Load()})
		if err := out.WriteText(ctx, string(b)); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
