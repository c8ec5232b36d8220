package topics_test

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/internal/testlog"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// reviewCBBroker is an application's Broker whose Link panics in
// Unsubscribe (a client library that panics once its connection is
// closed, say).
type reviewCBBroker struct{}

func (reviewCBBroker) Open(func(context.Context, topics.Publication)) (topics.Link, error) {
	return reviewCBLink{}, nil
}

type reviewCBLink struct{}

func (reviewCBLink) Subscribe(string) error                            { return nil }
func (reviewCBLink) Unsubscribe(string) error                          { panic("broker boom in Unsubscribe") }
func (reviewCBLink) Publish(context.Context, topics.Publication) error { return nil }
func (reviewCBLink) Close() error                                      { return nil }

// TestCallbackBrokerPanicOnLeaveKeepsTheHubConsistent: a member leaves
// in a function given to Conn.AfterFunc, whose panic colibri recovers
// and logs ("AfterFunc panicked"), so the connection ends. But the
// member's clean-up (Member.leave) stops half-way, at the panicking
// Link.Unsubscribe: the member is never removed from the hub's count
// (Stats.Members stays 1 for good), the interest count of its filters is
// left wrong, what it had queued is never reported to OnDrop, and a
// Drain waiting for it is never released.
func TestCallbackBrokerPanicOnLeaveKeepsTheHubConsistent(t *testing.T) {
	var logs testlog.Buffer
	hub := newHub(t, &topics.Options{Broker: reviewCBBroker{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	r := router.New(router.WithConfig(wsconn.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), CloseTimeout: 200 * time.Millisecond}))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		m := hub.Join(s.Conn, nil)
		if err := m.Subscribe("room/a"); err != nil {
			return err
		}
		for range in.Messages(0) {
		}
		return in.Err()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(r)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()

	c, _, err := gorilla.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for hub.Stats().Members != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""))
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if rep, err := r.Shutdown(ctx); err != nil || rep.Forced != 0 {
		t.Fatalf("Shutdown = %+v, %v: the connection did not end", rep, err)
	}
	if !strings.Contains(logs.String(), "broker Unsubscribe panicked") {
		t.Errorf("the broker's panic was not logged; log:\n%s", logs.String())
	}
	if n := hub.Stats().Members; n != 0 {
		t.Errorf("Stats().Members = %d after the only connection ended, want 0", n)
	}
}
