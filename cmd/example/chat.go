package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
	"github.com/colibri-ws/colibri/wsconn"
)

// rooms are chat rooms on topics: "room/NAME" for each room. With a NATS
// URL the rooms are shared by every instance connected to that server.
type rooms struct {
	hub *topics.Hub
	nc  *nats.Conn
}

// maxLine is the longest chat message a member may send. Its JSON line can
// be six times longer ("<" becomes "\u003c"), so a member's queue holds
// 8 MiB: with the hub's default (1 MiB) a long line would never be queued.
const (
	maxLine    = 1 << 20
	queueBytes = 8 << 20
)

func newRooms(natsURL string, logger *slog.Logger, onDrop func(topics.Drop)) (*rooms, error) {
	opts := &topics.Options{Logger: logger, OnDrop: onDrop, Limits: topics.Limits{MaxBytes: queueBytes}}
	rm := &rooms{}
	if natsURL != "" {
		nc, err := natsbroker.Connect(natsURL)
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		rm.nc = nc
		opts.Broker = natsbroker.New(nc, nil)
		logger.Info("chat rooms shared through NATS", slog.String("url", natsURL))
	}
	hub, err := topics.NewHub(opts)
	if err != nil {
		if rm.nc != nil {
			rm.nc.Close()
		}
		return nil, err
	}
	rm.hub = hub
	return rm, nil
}

func (rm *rooms) close() {
	_ = rm.hub.Close()
	if rm.nc != nil {
		rm.nc.Close()
	}
}

// chat joins the member to its room: what it sends reaches every other
// member, wrapped as {"from": name, "text": text} with the text verbatim.
func (s *server) chat(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, sess *wsconn.Session[member]) error {
	me := sess.Value
	topic := "room/" + me.Room
	m := s.rooms.hub.Join(sess.Conn, nil)
	if err := m.Subscribe(topic); err != nil {
		return err
	}
	s.online.Add(1)
	defer s.online.Add(-1)

	_ = m.Publish(ctx, topic, encode(chatLine{System: me.Name + " joined"}))
	defer func() {
		// The connection's context may be over; the announcement is not.
		_ = s.rooms.hub.Publish(context.WithoutCancel(ctx), topic, encode(chatLine{System: me.Name + " left"}))
	}()
	for msg := range in.Messages(maxLine) {
		line := chatLine{From: me.Name, Text: msg.Text()}
		if err := m.Publish(ctx, topic, encode(line)); err != nil {
			return err
		}
	}
	return in.Err()
}
