package topics_test

// Review of what a member whose client never reads costs and reports:
// TCP backpressure stalls its sender until wsconn's WriteTimeout ends the
// connection. Helpers come from helpers_test.go (newHub, dropLog,
// eventually) and adversarial_test.go (advLeft).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// reviewServe serves colibri connections on 127.0.0.1 with cfg and a
// 32 KiB send buffer; each joins hub with opts, subscribes to filters and
// is handed to the test.
func reviewServe(t *testing.T, hub *topics.Hub, cfg *wsconn.Config, opts *topics.MemberOptions, filters ...string) (string, <-chan *topics.Member) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	joined := make(chan *topics.Member, 8)
	var sessions sync.WaitGroup
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		m := hub.Join(s.Conn, opts)
		for _, f := range filters {
			if err := m.Subscribe(f); err != nil {
				return err
			}
		}
		joined <- m
		for range in.Messages(0) {
		}
		return in.Err()
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sessions.Add(1)
			defer sessions.Done()
			u, err := handshake.Accept(w, r, nil)
			if err != nil {
				return
			}
			_ = wsconn.Serve(r.Context(), u, struct{}{}, handler, cfg)
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				_ = c.(*net.TCPConn).SetWriteBuffer(32 << 10)
			}
		},
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
		sessions.Wait()
	})
	return "ws://" + ln.Addr().String(), joined
}

// TestCornerClientThatNeverReadsAddsUp: docs/topics.md "Backpressure": a
// member whose client does not read fills only its own queue; "No policy
// drops silently"; of a batch being written when the connection ends,
// "only the messages that did not go to the socket whole count as
// DropLeft". A DropOldest member's client reads nothing while 200
// messages of 32 KiB, each on its own topic, are published; wsconn's
// WriteTimeout (300 ms) ends the connection. Then the client reads what
// reached it: every message it got and every message reported dropped
// add up to the 200, none both, the ones it got in order; Member.Dropped,
// Stats.Dropped and OnDrop agree, with only the reasons DropOldest and a
// connection ending give.
func TestCornerClientThatNeverReadsAddsUp(t *testing.T) {
	drops := &dropLog{}
	hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 16}})
	cfg := &wsconn.Config{Logger: quiet, CloseTimeout: 200 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	url, joined := reviewServe(t, hub, cfg, &topics.MemberOptions{Policy: topics.DropOldest}, "t/+")
	c, resp, err := (&gorilla.Dialer{HandshakeTimeout: 3 * time.Second}).Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	defer c.Close()
	var m *topics.Member
	select {
	case m = <-joined:
	case <-time.After(3 * time.Second):
		t.Fatal("no member")
	}

	const n = 200
	pad := strings.Repeat("x", 32<<10)
	for i := range n {
		if err := hub.Publish(context.Background(), "t/"+strconv.Itoa(i), messages.Text(fmt.Sprintf("%d:%s", i, pad))); err != nil {
			t.Fatal(err)
		}
	}
	advLeft(t, m)

	got := map[int]bool{}
	last := -1
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			break
		}
		name, _, _ := strings.Cut(string(b), ":")
		i, _ := strconv.Atoi(name)
		if i <= last {
			t.Errorf("message %d after %d", i, last)
		}
		last = i
		got[i] = true
	}
	dropped := map[int]bool{}
	drops.mu.Lock()
	for _, d := range drops.drops {
		i, _ := strconv.Atoi(strings.TrimPrefix(d.Topic, "t/"))
		if dropped[i] {
			t.Errorf("message %d reported dropped twice", i)
		}
		if got[i] {
			t.Errorf("message %d reached the client and was reported dropped (%v)", i, d.Reason)
		}
		dropped[i] = true
		switch d.Reason {
		case topics.DropEvicted, topics.DropRefused, topics.DropLeft:
		default:
			t.Errorf("message %d dropped as %v", i, d.Reason)
		}
	}
	nd := len(drops.drops)
	drops.mu.Unlock()
	for i := range n {
		if !got[i] && !dropped[i] {
			t.Errorf("message %d neither reached the client nor was reported dropped", i)
		}
	}
	if m.Dropped() != int64(nd) || hub.Stats().Dropped != int64(nd) {
		t.Errorf("Member.Dropped %d, Stats.Dropped %d, OnDrop %d", m.Dropped(), hub.Stats().Dropped, nd)
	}
	if err := m.Drain(context.Background()); !errors.Is(err, topics.ErrLeft) {
		t.Errorf("Drain = %v, want ErrLeft", err)
	}
	t.Logf("client got %d, dropped %d (left %d)", len(got), nd, drops.count(topics.DropLeft))
}
