package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/wsconn"
)

// colibri, the way its docs show: a router with ws routes, served by an
// app. Echo ranges over whole messages and writes each back; broadcast
// prepares each message once and writes the same bytes to every
// connection.

func init() { register(colibriServer{}) }

type colibriServer struct{}

func (colibriServer) name() string { return "colibri" }

func (colibriServer) serve(ctx context.Context, ln net.Listener, dbg http.Handler) error {
	quiet := slog.New(slog.DiscardHandler)
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet, PingInterval: -1}))
	r.Handle("/debug/", dbg)
	router.WS(r, "/echo", nil, colibriEcho)
	room := &colibriRoom{conns: map[*wsconn.Outbound]struct{}{}}
	router.WS(r, "/broadcast", nil, room.serve)
	a := app.New(r, app.Config{Logger: quiet, NoSignals: true})
	return a.Serve(ctx, ln)
}

func colibriEcho(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
	for m := range in.Messages(0) {
		if err := out.WriteMessage(ctx, m); err != nil {
			return err
		}
	}
	return in.Err()
}

type colibriRoom struct {
	mu    sync.RWMutex
	conns map[*wsconn.Outbound]struct{}
}

func (room *colibriRoom) serve(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, _ *wsconn.Session[struct{}]) error {
	room.mu.Lock()
	room.conns[out] = struct{}{}
	room.mu.Unlock()
	defer func() {
		room.mu.Lock()
		delete(room.conns, out)
		room.mu.Unlock()
	}()
	for m := range in.Messages(0) {
		p := wsconn.Prepare(m)
		room.mu.RLock()
		for o := range room.conns {
			_ = o.WritePrepared(ctx, p)
		}
		room.mu.RUnlock()
	}
	return in.Err()
}
