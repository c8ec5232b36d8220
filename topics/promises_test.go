package topics_test

// These tests hold docs/topics.md to what it promises about what a
// subscriber's WebSocket client sees. Each serves a colibri handler on a
// loopback socket and connects gorilla/websocket, a client colibri did not
// write. Where the member's sender must be caught in the middle of a
// write, the server's send buffer is cut to 32 KiB and the messages are
// large: a client that then stops reading stalls the sender inside
// one large message, and the test knows exactly what the member holds.
// (The client's receive buffer is left alone: shrinking it on an open
// connection stalls TCP itself. Until the client reads, Linux gives it the
// initial 128 KiB of net.ipv4.tcp_rmem, far below bigSize.)

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/handshake"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// bigSize is larger than everything the socket buffers can hold, so
// a message of this size stays in flight until the client reads it.
const bigSize = 512 << 10

// loopConfig gives a stalled write ample time: the tests stall the
// member's sender on purpose.
var loopConfig = &wsconn.Config{Logger: quiet, CloseTimeout: time.Second, WriteTimeout: 10 * time.Second}

// loopback serves colibri connections on 127.0.0.1 with small send
// buffers. Each connection joins hub with opts, subscribes to filters and
// is handed to the test on joined; its handler reads until the client
// goes, and what wsconn.Serve returned arrives on ended.
type loopback struct {
	url    string
	joined chan *topics.Member
	ended  chan error
	// inbound, when set, sees every message the client sends.
	inbound func(m *topics.Member, msg messages.Message)
}

func serveLoopback(t *testing.T, hub *topics.Hub, opts *topics.MemberOptions, filters ...string) *loopback {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &loopback{url: "ws://" + ln.Addr().String(), joined: make(chan *topics.Member, 8), ended: make(chan error, 8)}
	var sessions sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	handler := func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		m := hub.Join(s.Conn, opts)
		for _, f := range filters {
			if err := m.Subscribe(f); err != nil {
				return err
			}
		}
		l.joined <- m
		for msg := range in.Messages(0) {
			if l.inbound != nil {
				l.inbound(m, msg)
			}
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
			l.ended <- wsconn.Serve(r.Context(), u, struct{}{}, handler, loopConfig)
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s != http.StateNew {
				return
			}
			_ = c.(*net.TCPConn).SetWriteBuffer(32 << 10)
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
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
			_ = c.Close() // hijacked ones too
		}
		mu.Unlock()
		sessions.Wait()
	})
	return l
}

// dial connects a gorilla client and returns it with the member its
// connection joined as.
func (l *loopback) dial(t *testing.T) (*gorilla.Conn, *topics.Member) {
	t.Helper()
	d := gorilla.Dialer{HandshakeTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := d.DialContext(ctx, l.url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	select {
	case m := <-l.joined:
		return c, m
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not join the hub")
		return nil, nil
	}
}

// big returns a message of bigSize bytes that starts with name and a colon.
func big(name string) messages.Message {
	return messages.Text(name + ":" + strings.Repeat("x", bigSize-len(name)-1))
}

// wire is the size of a text message of n bytes on the wire, header
// included, as the limits count it.
func wire(n int) int {
	switch {
	case n < 126:
		return n + 2
	case n < 1<<16:
		return n + 4
	}
	return n + 10
}

// stalled waits until the server has started writing the next message to
// c (its header has arrived) and returns the rest of it unread: until the
// test reads it, the message stays in flight in the member's sender.
func stalled(t *testing.T, c *gorilla.Conn) io.Reader {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, r, err := c.NextReader()
	if err != nil || typ != gorilla.TextMessage {
		t.Fatalf("next message: type %d, %v", typ, err)
	}
	return r
}

// readText reads the rest of a message and returns its name: what came
// before the first colon, or all of it.
func readText(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	name, _, _ := strings.Cut(string(b), ":")
	return name
}

// next reads the next message off c and returns its name.
func next(t *testing.T, c *gorilla.Conn) string {
	t.Helper()
	return readText(t, stalled(t, c))
}

func publish(t *testing.T, hub *topics.Hub, topic string, msg messages.Message, opts ...topics.PublishOption) {
	t.Helper()
	if err := hub.Publish(context.Background(), topic, msg, opts...); err != nil {
		t.Fatalf("publish to %q: %v", topic, err)
	}
}

// TestPromiseSlowClientIsClosedByItsDisconnectPolicy: "The default is
// Disconnect(1013), where nothing else is set"; "Disconnect marks the
// member; its sender finishes the message it is writing, then returns a
// *wsconn.CloseError, and wsconn sends the CLOSE frame ahead of anything
// still queued". Every message the client does not get is reported with
// DropDisconnected, with its size on the wire.
func TestPromiseSlowClientIsClosedByItsDisconnectPolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy topics.Policy
		want   int
	}{
		{"default", topics.Policy{}, int(frames.CloseTryAgainLater)},
		{"Disconnect(1008)", topics.Disconnect(frames.ClosePolicyViolation), int(frames.ClosePolicyViolation)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var drops dropLog
			hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 2, MaxBytes: 8 << 20}})
			l := serveLoopback(t, hub, &topics.MemberOptions{Policy: tc.policy}, "feed")
			c, m := l.dial(t)

			publish(t, hub, "feed", big("0"))
			rest := stalled(t, c) // 0 is being written
			// 1 is queued next to it; 2 finds the member full and
			// disconnects it; 3 to 9 find it disconnecting.
			for i := 1; i < 10; i++ {
				publish(t, hub, "feed", big(fmt.Sprint(i)))
			}
			if got := readText(t, rest); got != "0" {
				t.Fatalf("first message %q, want 0", got)
			}
			// Then the CLOSE frame, ahead of 1.
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, msg, err := c.ReadMessage()
			var ce *gorilla.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.want {
				t.Fatalf("after the message in flight the client read %.20q, %v; want close %d", msg, err, tc.want)
			}
			select {
			case err := <-l.ended:
				if got := wsconn.CloseStatus(err); int(got) != tc.want {
					t.Errorf("the server's session ended with %v, want close %d", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the server's session did not end")
			}
			eventually(t, "the member left", func() bool { return hub.Stats().Members == 0 })

			// 1 was discarded with the member, 2 to 9 turned away.
			if n, all := drops.count(topics.DropDisconnected), drops.total(); n != 9 || all != 9 {
				t.Errorf("OnDrop saw %d drops, %d of them DropDisconnected; want 9 and 9", all, n)
			}
			if st := hub.Stats(); m.Dropped() != 9 || st.Dropped != 9 || st.Published != 10 || st.Delivered != 2 {
				t.Errorf("member dropped %d, hub stats %+v; want 9 dropped of 10 published, 2 delivered", m.Dropped(), st)
			}
			drops.mu.Lock()
			defer drops.mu.Unlock()
			for _, d := range drops.drops {
				if d.Member != m || d.Topic != "feed" || d.Bytes != wire(bigSize) || d.Count != 1 {
					t.Errorf("drop %+v, want member %p, topic feed, %d bytes, count 1", d, m, wire(bigSize))
				}
			}
		})
	}
}

// TestPromiseMessagesBeingWrittenAreNotEvicted: "Messages in a batch have
// left the queue but still count against the member's limits until the
// socket took them, and no policy can take them back: when only they
// stand in the way, DropOldest and KeepLatest refuse the new message
// instead of evicting (DropRefused)."
func TestPromiseMessagesBeingWrittenAreNotEvicted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy topics.Policy
	}{
		{"DropOldest", topics.DropOldest},
		{"KeepLatest", topics.KeepLatest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var drops dropLog
			hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 1, MaxBytes: 8 << 20}})
			l := serveLoopback(t, hub, &topics.MemberOptions{Policy: tc.policy}, "gauge")
			c, m := l.dial(t)

			publish(t, hub, "gauge", big("0"))
			rest := stalled(t, c)
			publish(t, hub, "gauge", messages.Text("1")) // same topic, so the same KeepLatest key
			if n, refused := drops.total(), drops.count(topics.DropRefused); n != 1 || refused != 1 {
				t.Fatalf("%d drops, %d refused; want the new message refused and nothing evicted or replaced", n, refused)
			}
			if b, n := m.Buffered(); b != wire(bigSize) || n != 1 {
				t.Errorf("Buffered() = %d bytes, %d messages; want the message in flight, %d bytes", b, n, wire(bigSize))
			}
			if got := readText(t, rest); got != "0" {
				t.Fatalf("the message in flight arrived as %q", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := m.Drain(ctx); err != nil {
				t.Fatalf("Drain: %v", err)
			}
			publish(t, hub, "gauge", messages.Text("2"))
			if got := next(t, c); got != "2" {
				t.Errorf("after the refused message the client got %q, want 2", got)
			}
			if m.Dropped() != 1 || hub.Stats().Dropped != 1 {
				t.Errorf("member dropped %d, hub %d; want 1", m.Dropped(), hub.Stats().Dropped)
			}
		})
	}
}

// TestPromiseTooLargeIsDroppedWhateverThePolicy: "A message larger than
// MaxBytes on its own can never be queued: it is dropped with DropTooLarge
// whatever the policy." Block does not wait for it and Disconnect does
// not close the connection over it: the next message arrives.
func TestPromiseTooLargeIsDroppedWhateverThePolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy topics.Policy
	}{
		{"DropOldest", topics.DropOldest},
		{"DropNewest", topics.DropNewest},
		{"KeepLatest", topics.KeepLatest},
		{"Block", topics.Block(time.Minute)},
		{"Disconnect(1013)", topics.Disconnect(frames.CloseTryAgainLater)},
		{"Disconnect(1008)", topics.Disconnect(frames.ClosePolicyViolation)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var drops dropLog
			hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxBytes: 1000}})
			l := serveLoopback(t, hub, &topics.MemberOptions{Policy: tc.policy}, "t")
			c, m := l.dial(t)

			// 996 bytes are 1000 on the wire: they fit, alone.
			publish(t, hub, "t", messages.Text(strings.Repeat("a", 996)))
			if got := next(t, c); got != strings.Repeat("a", 996) {
				t.Fatalf("client got %.10q…, want the message of exactly MaxBytes", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := m.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			// 997 are 1001 and never fit. A wait under Block would end
			// with the context, as DropTimedOut.
			if err := hub.Publish(ctx, "t", messages.Text(strings.Repeat("b", 997))); err != nil {
				t.Fatalf("publish: %v", err)
			}
			publish(t, hub, "t", messages.Text("c:after"))
			if got := next(t, c); got != "c" {
				t.Fatalf("client got %.10q…, want c", got)
			}
			drops.mu.Lock()
			defer drops.mu.Unlock()
			if len(drops.drops) != 1 || drops.drops[0].Reason != topics.DropTooLarge || drops.drops[0].Bytes != 1001 {
				t.Fatalf("drops %+v, want one DropTooLarge of 1001 bytes", drops.drops)
			}
			if m.Dropped() != 1 {
				t.Errorf("member dropped %d", m.Dropped())
			}
		})
	}
}

// TestPromiseBlockDelaysOnlyItsPublisher: "Publish first queues the
// message for every member with room and only then waits for the blocked
// ones, all against one deadline, so a blocked member delays its publisher
// but not the other members of that publish".
func TestPromiseBlockDelaysOnlyItsPublisher(t *testing.T) {
	b := blockWaiting(t, context.Background(), "0", "1")
	drops, slow, rest, published := b.drops, b.slow, b.rest, b.published
	select {
	case err := <-published:
		t.Fatalf("Publish returned (%v) while a Block member had no room", err)
	default:
	}
	if got := readText(t, rest); got != "0" {
		t.Fatalf("slow client got %q", got)
	}
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Publish still waits after the slow client read")
	}
	if got := next(t, slow); got != "1" {
		t.Fatalf("slow client got %q", got)
	}
	if drops.total() != 0 {
		t.Fatalf("drops %+v, want none", drops.drops)
	}

}

// TestPromiseBlockEndsWithThePublishersContext: the publisher waits "at
// most timeout and while its context lasts, then gives up on this member"
// (DropTimedOut); the message was accepted, so Publish returns nil. (A
// fresh connection: one that has read a large message may have grown its
// receive buffer past bigSize.)
func TestPromiseBlockEndsWithThePublishersContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b := blockWaiting(t, ctx, "2", "3")
	hub, drops, slow, slowM, rest, published := b.hub, b.drops, b.slow, b.slowM, b.rest, b.published
	cancel()
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("Publish with its context cancelled while waiting: %v; the message was accepted", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Publish kept waiting after its context ended")
	}
	if n := drops.count(topics.DropTimedOut); n != 1 || drops.total() != 1 || slowM.Dropped() != 1 {
		t.Fatalf("%d drops, %d timed out, slow member dropped %d; want 1 DropTimedOut", drops.total(), n, slowM.Dropped())
	}
	if got := readText(t, rest); got != "2" {
		t.Fatalf("slow client got %q", got)
	}
	publish(t, hub, "t", messages.Text("4"))
	if got := next(t, slow); got != "4" {
		t.Fatalf("slow client got %q after the message that timed out, want 4", got)
	}
}

// TestPromiseControlFramesPassTheQueue: "Control frames are never behind
// the queue ... PING, PONG and CLOSE frames travel on wsconn's own path
// and go out between messages, whatever the queue holds", and a member's
// sender writes "in batches of up to 16". A client's PING, sent while 24
// messages wait for it, is answered after the batch being written: the
// first, since the client has read nothing.
func TestPromiseControlFramesPassTheQueue(t *testing.T) {
	hub := newHub(t, &topics.Options{Policy: topics.DropNewest, Limits: topics.Limits{MaxMessages: 64, MaxBytes: 64 << 20}})
	l := serveLoopback(t, hub, nil, "t")
	pinged := make(chan struct{})
	l.inbound = func(_ *topics.Member, msg messages.Message) {
		if msg.Text() == "pinged" {
			close(pinged)
		}
	}
	c, m := l.dial(t)

	const total = 24
	for i := range total {
		publish(t, hub, "t", big(fmt.Sprint(i)))
	}
	read := 0
	pongAt := -1
	c.SetPongHandler(func(data string) error {
		if data == "are you there" && pongAt < 0 {
			pongAt = read
		}
		return nil
	})
	deadline := time.Now().Add(5 * time.Second)
	if err := c.WriteControl(gorilla.PingMessage, []byte("are you there"), deadline); err != nil {
		t.Fatal(err)
	}
	// Frames are read in order: once the handler has this message,
	// colibri has read the PING before it.
	if err := c.WriteMessage(gorilla.TextMessage, []byte("pinged")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pinged:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not read the client's messages")
	}
	for ; read < total; read++ {
		if got := next(t, c); got != fmt.Sprint(read) {
			t.Fatalf("message %d arrived as %q", read, got)
		}
	}
	if pongAt < 0 || pongAt > 16 {
		t.Fatalf("the PONG came after %d of %d queued messages, want it after the batch in flight (at most 16)", pongAt, total)
	}
	if m.Dropped() != 0 {
		t.Errorf("member dropped %d", m.Dropped())
	}
}

// TestPromiseUnsubscribeStillSendsQueuedMessages: "m.Unsubscribe(filter):
// end one subscription; queued messages are still sent", and nothing
// published after it arrives.
func TestPromiseUnsubscribeStillSendsQueuedMessages(t *testing.T) {
	var drops dropLog
	hub := newHub(t, &topics.Options{OnDrop: drops.add})
	l := serveLoopback(t, hub, nil, "a", "b")
	c, m := l.dial(t)

	publish(t, hub, "a", big("a0"))
	rest := stalled(t, c)
	publish(t, hub, "a", messages.Text("a1"))
	publish(t, hub, "a", messages.Text("a2"))
	if _, n := m.Buffered(); n != 3 {
		t.Fatalf("member holds %d messages, want 3", n)
	}
	if err := m.Unsubscribe("a"); err != nil {
		t.Fatal(err)
	}
	publish(t, hub, "a", messages.Text("a3"))
	publish(t, hub, "b", messages.Text("b0"))
	got := []string{readText(t, rest)}
	for range 3 {
		got = append(got, next(t, c))
	}
	if want := "a0 a1 a2 b0"; strings.Join(got, " ") != want {
		t.Fatalf("client got %q, want %q", got, want)
	}
	if drops.total() != 0 || m.Dropped() != 0 {
		t.Errorf("unsubscribing dropped %d messages", drops.total())
	}
}

// TestSubscribeAgainOnlyChangesThePolicy: subscribing again to the same
// filter makes no second subscription (one delivery, one Unsubscribe ends
// it) and, as Member.Subscribe says, applies the new call's policy:
// Subscribe after SubscribeWith returns the filter to the member's policy.
func TestSubscribeAgainOnlyChangesThePolicy(t *testing.T) {
	var drops dropLog
	hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 2, MaxBytes: 8 << 20}})
	l := serveLoopback(t, hub, &topics.MemberOptions{Policy: topics.DropNewest}, "end")
	c, m := l.dial(t)

	if err := m.SubscribeWith("g", topics.KeepLatest); err != nil {
		t.Fatal(err)
	}
	if err := m.SubscribeWith("g", topics.KeepLatest); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Subscriptions(), " "); got != "end g" || hub.Subscribers("g") != 1 {
		t.Fatalf("Subscriptions() = %q, Subscribers(g) = %d", got, hub.Subscribers("g"))
	}
	// Under KeepLatest the second queued message replaces the first.
	publish(t, hub, "g", big("0"))
	rest := stalled(t, c)
	publish(t, hub, "g", messages.Text("1"))
	publish(t, hub, "g", messages.Text("2"))
	if r := drops.count(topics.DropReplaced); r != 1 || drops.total() != 1 {
		t.Fatalf("under KeepLatest: %d drops, %d replaced; want 1 replaced", drops.total(), r)
	}
	// Subscribe: the member's DropNewest from now on.
	if err := m.Subscribe("g"); err != nil {
		t.Fatal(err)
	}
	publish(t, hub, "g", messages.Text("3"))
	if r := drops.count(topics.DropRefused); r != 1 || drops.total() != 2 {
		t.Fatalf("after Subscribe: %d drops, %d refused; want the member's DropNewest to refuse", drops.total(), r)
	}
	if got := readText(t, rest); got != "0" {
		t.Fatalf("got %q", got)
	}
	if got := next(t, c); got != "2" {
		t.Fatalf("got %q, want 2, which replaced 1", got)
	}
	// One Unsubscribe ends what two SubscribeWith and a Subscribe made.
	if err := m.Unsubscribe("g"); err != nil {
		t.Fatal(err)
	}
	if n := hub.Subscribers("g"); n != 0 {
		t.Fatalf("Subscribers(g) = %d after Unsubscribe", n)
	}
	publish(t, hub, "g", messages.Text("4"))
	publish(t, hub, "end", messages.Text("end"))
	if got := next(t, c); got != "end" {
		t.Fatalf("got %q after unsubscribing from g, want end", got)
	}
}

// TestPromiseDrainReturnsTheContextsCause: "It returns at once when the
// queue is empty, the context's cause when ctx ends first".
func TestPromiseDrainReturnsTheContextsCause(t *testing.T) {
	hub := newHub(t, nil)
	l := serveLoopback(t, hub, nil, "t")
	c, m := l.dial(t)
	if err := m.Drain(context.Background()); err != nil {
		t.Fatalf("Drain with nothing queued: %v", err)
	}
	publish(t, hub, "t", big("0"))
	rest := stalled(t, c)
	errGaveUp := errors.New("gave up waiting for the client")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Drain(ctx) }()
	cancel(errGaveUp)
	select {
	case err := <-done:
		if !errors.Is(err, errGaveUp) {
			t.Fatalf("Drain = %v, want the context's cause", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return when its context ended")
	}
	if got := readText(t, rest); got != "0" {
		t.Fatalf("got %q", got)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := m.Drain(ctx2); err != nil {
		t.Fatalf("Drain after the client read: %v", err)
	}
	if b, n := m.Buffered(); b != 0 || n != 0 {
		t.Fatalf("Buffered() = %d, %d after Drain", b, n)
	}
}
