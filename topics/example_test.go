package topics_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// A chat room: every connection joins the hub, subscribes to its room and
// publishes what its client sends; the others in the room receive it.
func Example() {
	hub, err := topics.NewHub(nil)
	if err != nil {
		panic(err)
	}
	defer hub.Close()

	chat := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[string]) error {
		m := hub.Join(s.Conn, nil) // leaves by itself when the connection ends
		room := "room/" + s.Value
		if err := m.Subscribe(room); err != nil {
			return err
		}
		for msg := range in.Messages(0) {
			if err := m.Publish(ctx, room, msg); err != nil {
				return err
			}
		}
		return in.Err()
	}

	// Serving the handler; the router package does this for applications.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := handshake.Accept(w, r, nil)
		if err != nil {
			return
		}
		room := r.URL.Query().Get("room")
		_ = wsconn.Serve(r.Context(), u, room, chat, &wsconn.Config{Logger: slog.New(slog.DiscardHandler)})
	}))
	defer srv.Close()

	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/?room=lobby"
	alice, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		panic(err)
	}
	defer alice.Close()
	bob, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		panic(err)
	}
	defer bob.Close()
	for hub.Subscribers("room/lobby") < 2 {
		time.Sleep(time.Millisecond)
	}

	_ = alice.WriteMessage(websocket.TextMessage, []byte("hello, lobby"))
	_, msg, _ := bob.ReadMessage()
	fmt.Println(string(msg))
	fmt.Println(hub.Subscribers("room/lobby"), "subscribers")
	// Output:
	// hello, lobby
	// 2 subscribers
}

func ExampleMatch() {
	fmt.Println(topics.Match("room/+", "room/lobby"))
	fmt.Println(topics.Match("room/+", "room/lobby/42"))
	fmt.Println(topics.Match("room/#", "room"))
	fmt.Println(topics.Match("#", "$sys/load"))
	// Output:
	// true
	// false
	// true
	// false
}

// Policies at three levels: the hub's default, a member's (for the
// route), and a subscription's (for the topic).
func ExampleHub_Join() {
	hub, err := topics.NewHub(&topics.Options{
		Policy: topics.DropOldest, // where nothing else is set
		Limits: topics.Limits{MaxBytes: 256 << 10, MaxMessages: 128},
	})
	if err != nil {
		panic(err)
	}
	defer hub.Close()

	// A dashboard route: its clients must not miss alerts, and only need
	// the latest value of each gauge.
	dashboard := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		m := hub.Join(s.Conn, &topics.MemberOptions{Policy: topics.Disconnect(frames.CloseTryAgainLater)})
		if err := m.Subscribe("alerts/#"); err != nil {
			return err
		}
		if err := m.SubscribeWith("gauges/+", topics.KeepLatest); err != nil {
			return err
		}
		for range in.Messages(0) {
		}
		return in.Err()
	}
	_ = dashboard

	// Anywhere else: a gauge update; KeepLatest keeps one per topic.
	_ = hub.Publish(context.Background(), "gauges/cpu", messages.Text("0.42"))
}

// Drop observability: count drops by reason, and see which connection.
func ExampleOptions_onDrop() {
	var dropped [8]atomic.Int64 // by reason; a metrics library would do
	hub, err := topics.NewHub(&topics.Options{
		OnDrop: func(d topics.Drop) {
			dropped[d.Reason].Add(1)
			if d.Reason == topics.DropDisconnected {
				d.Member.Conn().Logger().Info("slow consumer disconnected", slog.String("topic", d.Topic))
			}
		},
	})
	if err != nil {
		panic(err)
	}
	defer hub.Close()
	fmt.Println(hub.Stats().Dropped)
	// Output: 0
}

// A handler that publishes a burst and waits until its own queue has been
// written before it goes on, the way a Bun handler waits for drain.
func ExampleMember_Drain() {
	hub, err := topics.NewHub(nil)
	if err != nil {
		panic(err)
	}
	defer hub.Close()
	replay := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[[]string]) error {
		m := hub.Join(s.Conn, nil)
		if err := m.Subscribe("history"); err != nil {
			return err
		}
		for _, line := range s.Value {
			if err := m.Publish(ctx, "history", messages.Text(line), topics.ToSelf()); err != nil {
				return err
			}
			if _, n := m.Buffered(); n >= 64 {
				if err := m.Drain(ctx); err != nil {
					return err
				}
			}
		}
		for range in.Messages(0) {
		}
		return in.Err()
	}
	_ = replay
}

// Hubs in one process share publishes through an InProcess broker.
func ExampleInProcess() {
	var bus topics.InProcess
	a, err := topics.NewHub(&topics.Options{Broker: &bus})
	if err != nil {
		panic(err)
	}
	defer a.Close()
	b, err := topics.NewHub(&topics.Options{Broker: &bus})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	// Members of b subscribed to "news/#" receive this.
	_ = a.Publish(context.Background(), "news/today", messages.Text("extra!"))
}
