package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// colibri, the way its docs show: a router with ws routes, served by an
// app. Echo ranges over whole messages and writes each back; broadcast
// publishes on a topics hub.
//
// The "colibri" column is colibri as its users get it: every setting at
// its default, keep-alive pings included (the peers have none unless the
// application writes them). "colibri-lean" is the same server with
// keep-alive off (PingInterval -1), a labelled variant that shows what
// keep-alive costs; neither sets the baseline the ratios are taken
// against.

func init() {
	register(colibriServer{})
	register(colibriServer{lean: true})
}

// colibriLean is the name of the keep-alive-off variant.
const colibriLean = colibri + "-lean"

type colibriServer struct {
	lean bool // keep-alive off
}

func (s colibriServer) name() string {
	if s.lean {
		return colibriLean
	}
	return colibri
}

func (s colibriServer) kind() libKind {
	if s.lean {
		return variantLib
	}
	return colibriLib
}

func (s colibriServer) serve(ctx context.Context, ln net.Listener, dbg http.Handler) error {
	quiet := slog.New(slog.DiscardHandler)
	cfg := wsconn.Config{Logger: quiet}
	if s.lean {
		cfg.PingInterval = -1
	}
	r := router.New(router.WithConfig(cfg))
	r.Handle("/debug/", dbg)
	router.WS(r, "/echo", nil, colibriEcho)
	hub, err := topics.NewHub(&topics.Options{
		Logger: quiet,
		Policy: topics.Block(10 * time.Second),
		Limits: topics.Limits{MaxMessages: 4096, MaxBytes: 16 << 20},
	})
	if err != nil {
		return err
	}
	defer hub.Close()
	room := &colibriRoom{hub: hub}
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

// colibriRoom is the broadcast endpoint on a topics hub: every connection
// subscribes to one topic; a message is prepared once and queued for each
// member, whose sender writes it. Block keeps every delivery, as the other
// servers do, where colibri's default would disconnect a lagging member.
type colibriRoom struct {
	hub *topics.Hub
}

func (room *colibriRoom) serve(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
	m := room.hub.Join(s.Conn, nil)
	if err := m.Subscribe("room"); err != nil {
		return err
	}
	for msg := range in.Messages(0) {
		if err := m.Publish(ctx, "room", msg, topics.ToSelf()); err != nil {
			return err
		}
	}
	return in.Err()
}
