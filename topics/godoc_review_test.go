package topics_test

// Audit of the doc comments of package topics against the code: each test
// quotes the claim it checks.

import (
	"context"
	"errors"
	"net"
	"net/http"
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

// gdBroker is a Broker whose one Link hands the test its deliver function
// and whose Close fails with closeErr.
type gdBroker struct {
	closeErr error
	deliver  func(context.Context, topics.Publication)
}

func (b *gdBroker) Open(deliver func(context.Context, topics.Publication)) (topics.Link, error) {
	b.deliver = deliver
	return gdLink{b}, nil
}

type gdLink struct{ b *gdBroker }

func (gdLink) Subscribe(string) error                            { return nil }
func (gdLink) Unsubscribe(string) error                          { return nil }
func (gdLink) Publish(context.Context, topics.Publication) error { return nil }
func (l gdLink) Close() error                                    { return l.b.closeErr }

// gdLost returns a publication of msg to topic that lost messages before it.
func gdLost(topic string, lost int, msg string) topics.Publication {
	return topics.Publication{Topic: topic, Message: wsconn.Prepare(messages.Text(msg)), Lost: lost}
}

func gdDeliver(b *gdBroker, p topics.Publication) {
	b.deliver(context.Background(), p)
}

// gdServe serves handler on a loopback port, each connection accepted by
// handshake.Accept, and returns the ws:// URL; the test's cleanup stops
// the server and waits for its sessions.
func gdServe(t *testing.T, handler wsconn.Handler[struct{}]) string {
	t.Helper()
	return gdServeWith(t, handler, nil, loopConfig)
}

// gdServeWith is gdServe with accept options and a connection config.
func gdServeWith(t *testing.T, handler wsconn.Handler[struct{}], accept *handshake.AcceptOptions, cfg *wsconn.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sessions sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sessions.Add(1)
			defer sessions.Done()
			u, err := handshake.Accept(w, r, accept)
			if err != nil {
				return
			}
			_ = wsconn.Serve(context.WithoutCancel(r.Context()), u, struct{}{}, handler, cfg)
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				mu.Lock()
				conns[c] = struct{}{}
				mu.Unlock()
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
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		sessions.Wait()
	})
	return "ws://" + ln.Addr().String()
}

func gdDial(t *testing.T, url string) *gorilla.Conn {
	t.Helper()
	return gdDialWith(t, url, gorilla.Dialer{HandshakeTimeout: 5 * time.Second})
}

func gdDialWith(t *testing.T, url string, d gorilla.Dialer) *gorilla.Conn {
	t.Helper()
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

// Publication.Lost: "The hub counts them as dropped, with DropLost, for
// every member this publication reaches"; DropLost: "reports it for the
// members that message reaches, with Count holding how many messages were
// lost in a row and Bytes zero"; Drop.Policy is the subscription's;
// Stats.Dropped counts "one per message per member"; Member.Dropped adds
// Count up. A member the publication does not reach counts nothing.
func TestGodocDropLostCountedForEachMemberReached(t *testing.T) {
	var drops dropLog
	b := &gdBroker{}
	hub := newHub(t, &topics.Options{Broker: b, OnDrop: drops.add})
	l := serveLoopback(t, hub, nil)
	c1, m1 := l.dial(t)
	c2, m2 := l.dial(t)
	_, m3 := l.dial(t)
	if err := m1.SubscribeWith("t/+", topics.DropNewest); err != nil {
		t.Fatal(err)
	}
	if err := m2.SubscribeWith("t/x", topics.DropOldest); err != nil {
		t.Fatal(err)
	}
	if err := m3.Subscribe("u"); err != nil {
		t.Fatal(err)
	}
	gdDeliver(b, gdLost("t/x", 3, "after:"))
	for _, c := range []*gorilla.Conn{c1, c2} {
		if got := next(t, c); got != "after" {
			t.Fatalf("got %q", got)
		}
	}
	if m1.Dropped() != 3 || m2.Dropped() != 3 || m3.Dropped() != 0 {
		t.Errorf("Dropped: %d, %d, %d; want 3, 3, 0", m1.Dropped(), m2.Dropped(), m3.Dropped())
	}
	if st := hub.Stats(); st.Dropped != 6 || st.Published != 1 || st.Delivered != 2 {
		t.Errorf("Stats %+v, want Dropped 6, Published 1, Delivered 2", st)
	}
	drops.mu.Lock()
	defer drops.mu.Unlock()
	if len(drops.drops) != 2 {
		t.Fatalf("drops %+v, want two", drops.drops)
	}
	for _, d := range drops.drops {
		want := topics.DropNewest
		if d.Member == m2 {
			want = topics.DropOldest
		}
		if d.Reason != topics.DropLost || d.Count != 3 || d.Bytes != 0 || d.Topic != "t/x" || d.Policy != want {
			t.Errorf("drop %+v, want DropLost of 3, 0 bytes, t/x, policy %v", d, want)
		}
	}
}

// Join's doc: "Join makes c a member of h, until c's context ends"; Member:
// "A Member lives as long as its connection". Joined after the context
// ended, the member has left by the time Join returns: Subscribe and Drain
// fail with ErrLeft, and the hub counts no member.
func TestGodocJoinAfterTheContextEnded(t *testing.T) {
	hub := newHub(t, nil)
	joined := make(chan *topics.Member, 1)
	url := gdServe(t, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		s.Conn.AfterFunc(func() { joined <- hub.Join(s.Conn, nil) })
		return nil
	})
	c := gdDial(t, url)
	var m *topics.Member
	select {
	case m = <-joined:
	case <-time.After(5 * time.Second):
		t.Fatal("no Join")
	}
	if err := m.Subscribe("t"); !errors.Is(err, topics.ErrLeft) {
		t.Errorf("Subscribe = %v, want ErrLeft", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Drain(ctx); !errors.Is(err, topics.ErrLeft) {
		t.Errorf("Drain = %v, want ErrLeft", err)
	}
	if st := hub.Stats(); st.Members != 0 {
		t.Errorf("Members = %d, want 0", st.Members)
	}
	for range hub.Members() {
		t.Error("Members yields a member whose connection ended")
	}
	if hub.Subscribers("t") != 0 {
		t.Error("the left member is a subscriber")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
		t.Errorf("client read %v, want close 1000", err)
	}
}

// Hub.Close's doc: "Close is idempotent and returns the broker's error, if
// any". The first call returns the Link's error; later calls return nil
// and do not close the Link again.
func TestGodocHubCloseReturnsTheBrokersErrorOnce(t *testing.T) {
	errLink := errors.New("link close failed")
	b := &gdBroker{closeErr: errLink}
	hub, err := topics.NewHub(&topics.Options{Broker: b, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Close(); !errors.Is(err, errLink) {
		t.Fatalf("Close = %v, want the link's error", err)
	}
	if err := hub.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := hub.Publish(context.Background(), "t", messages.Text("x")); !errors.Is(err, topics.ErrClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
}

// Limits: bytes are counted as the message's frame, uncompressed; MaxBytes:
// "A message larger than MaxBytes is never queued: it is dropped with
// DropTooLarge". On a connection with permessage-deflate, a 5,000-byte
// text of one letter would go on the wire in a few dozen bytes, yet the
// member counts it as its uncompressed frame (wsconn.Prepared.Len, 5,004
// bytes) and drops it as too large for a MaxBytes of 1,000.
func TestGodocLimitsCountTheUncompressedFrame(t *testing.T) {
	var drops dropLog
	hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxBytes: 1000}})
	joined := make(chan *topics.Member, 1)
	comp := wsconn.Compression{Enabled: true}
	cfg := *loopConfig
	cfg.Compression = comp
	url := gdServeWith(t, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		m := hub.Join(s.Conn, nil)
		if err := m.Subscribe("t"); err != nil {
			return err
		}
		joined <- m
		for range in.Messages(0) {
		}
		return in.Err()
	}, &handshake.AcceptOptions{Compression: comp}, &cfg)
	c := gdDialWith(t, url, gorilla.Dialer{HandshakeTimeout: 5 * time.Second, EnableCompression: true})
	if m := <-joined; len(m.Conn().Extensions()) == 0 {
		t.Fatal("permessage-deflate was not negotiated")
	}
	publish(t, hub, "t", messages.Text(strings.Repeat("a", 5000)))
	publish(t, hub, "t", messages.Text("end"))
	var got []int
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(b) == "end" {
			break
		}
		got = append(got, len(b))
	}
	if n := drops.count(topics.DropTooLarge); n != 1 || len(got) != 0 {
		t.Fatalf("client got messages of %v bytes; %d DropTooLarge, want the 5,004-byte frame dropped as too large", got, n)
	}
}

// Publish refuses a message of neither kind (the zero Message among them)
// with wsconn.ErrInvalidKind, before it reaches a member, whose write
// would refuse it.
func TestGodocPublishRefusesAMessageOfNeitherKind(t *testing.T) {
	hub := newHub(t, nil)
	for _, m := range []messages.Message{{}, {Kind: 9, Payload: []byte("x")}} {
		if err := hub.Publish(context.Background(), "t", m); !errors.Is(err, wsconn.ErrInvalidKind) {
			t.Errorf("Publish of kind %d: %v, want ErrInvalidKind", m.Kind, err)
		}
	}
	if st := hub.Stats(); st.Published != 0 {
		t.Errorf("Stats %+v: nothing was published", st)
	}
}
