package topics_test

// Corners where topics meet the connection's lifecycle and the
// application's graceful shutdown: what a member holds when app.Shutdown
// strikes, under each policy; Drain and Block publishers racing with it;
// hubs joined by a broker whose Block members hold up a publisher; and
// subscribe/publish/leave/Close races. Each serves an app.App (router
// inside) on loopback with small send buffers and connects gorilla
// clients. Helpers come from helpers_test.go and promises_test.go (big,
// stalled, readText, next, publish, wire).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/app"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/router"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

// cornerApp is an app.App serving one ws route on 127.0.0.1, whose
// connections join hub with opts, subscribe to filters and hand their
// member to the test; the handler ranges over what the client sends and
// passes it to inbound, when set.
type cornerApp struct {
	app    *app.App
	url    string
	joined chan *topics.Member
	srv    *http.Server
	served chan struct{}
}

func serveCornerApp(t *testing.T, hub *topics.Hub, opts *topics.MemberOptions, inbound func(ctx context.Context, m *topics.Member, msg messages.Message) error, filters ...string) *cornerApp {
	t.Helper()
	ca := &cornerApp{joined: make(chan *topics.Member, 16), served: make(chan struct{})}
	r := router.New(router.WithConfig(wsconn.Config{Logger: quiet, CloseTimeout: time.Second, WriteTimeout: 5 * time.Second}))
	router.WS(r, "/ws", nil, func(ctx context.Context, in *wsconn.Inbound, out *wsconn.Outbound, s *wsconn.Session[struct{}]) error {
		m := hub.Join(s.Conn, opts)
		for _, f := range filters {
			if err := m.Subscribe(f); err != nil {
				return err
			}
		}
		ca.joined <- m
		for msg := range in.Messages(0) {
			if inbound != nil {
				if err := inbound(ctx, m, msg); err != nil {
					return err
				}
			}
		}
		return in.Err()
	})
	ca.app = app.New(r, app.Config{Logger: quiet, NoSignals: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca.url = "ws://" + ln.Addr().String() + "/ws"
	ca.srv = &http.Server{
		Handler: ca.app,
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				_ = c.(*net.TCPConn).SetWriteBuffer(32 << 10)
			}
		},
	}
	go func() {
		defer close(ca.served)
		_ = ca.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, _ = ca.app.Shutdown(ctx)
		_ = ca.srv.Close()
		<-ca.served
	})
	return ca
}

func (ca *cornerApp) dial(t *testing.T) (*gorilla.Conn, *topics.Member) {
	t.Helper()
	d := gorilla.Dialer{HandshakeTimeout: 3 * time.Second}
	c, resp, err := d.Dial(ca.url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	select {
	case m := <-ca.joined:
		return c, m
	case <-time.After(3 * time.Second):
		t.Fatal("the connection did not join the hub")
		return nil, nil
	}
}

// shutdown starts the app's graceful shutdown and returns its outcome.
func (ca *cornerApp) shutdown(timeout time.Duration) <-chan shutdownResult {
	done := make(chan shutdownResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		rep, err := ca.app.Shutdown(ctx)
		done <- shutdownResult{rep, err}
	}()
	return done
}

type shutdownResult struct {
	rep router.ShutdownReport
	err error
}

func waitShutdown(t *testing.T, done <-chan shutdownResult) router.ShutdownReport {
	t.Helper()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("Shutdown: %+v, %v", r.rep, r.err)
		}
		return r.rep
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
		return router.ShutdownReport{}
	}
}

// closeCode reads c until its connection ends and returns the close code
// it got, or -1.
func closeCode(t *testing.T, c *gorilla.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		_, p, err := c.ReadMessage()
		if err == nil {
			t.Errorf("unexpected message %.20q before the close", p)
			continue
		}
		var ce *gorilla.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return -1
	}
}

// waitInStack waits until some goroutine's stack holds fn: a publisher
// is then really waiting, not about to.
func waitInStack(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	eventually(t, fn+" runs", func() bool {
		n := runtime.Stack(buf, true)
		return bytes.Contains(buf[:n], []byte(fn))
	})
}

// TestTopicsCornerShutdownQueuedMessagesAreDroppedAsLeft: docs/closing.md
// "Shutdown": every connection sends 1001 "after the message it is
// writing"; docs/topics.md "Hubs and members": when the connection ends,
// however it ends, "what was still queued is discarded and reported as
// DropLeft", "a Block publisher still waiting for room reports its
// message as DropLeft too", Drain returns ErrLeft "once the messages it
// still held have been reported", and Drop.Policy is the member's for
// messages queued when the connection ended. For each policy, a member
// whose client stalls in a large message with small ones queued behind it
// is shut down: the client gets the large message whole, then 1001; the
// rest is counted once each, so that what the client received and what
// was dropped add up to what was published to it.
func TestTopicsCornerShutdownQueuedMessagesAreDroppedAsLeft(t *testing.T) {
	for _, tc := range []struct {
		policy   topics.Policy
		replaced int // of the three small messages, by KeepLatest
	}{
		{topics.DropOldest, 0},
		{topics.DropNewest, 0},
		{topics.KeepLatest, 2},
		{topics.Block(5 * time.Second), 0},
		{topics.Disconnect(1013), 0},
	} {
		t.Run(tc.policy.Name(), func(t *testing.T) {
			drops := &dropLog{}
			isBlock := tc.policy.Name() == "block"
			maxMsgs := 16
			if isBlock {
				maxMsgs = 4 // "0" and three small ones: full
			}
			hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxMessages: maxMsgs, MaxBytes: 8 << 20}})
			ca := serveCornerApp(t, hub, &topics.MemberOptions{Policy: tc.policy}, nil, "t")
			c, m := ca.dial(t)

			publish(t, hub, "t", big("0"))
			rest := stalled(t, c) // "0" is being written
			for i := 1; i <= 3; i++ {
				publish(t, hub, "t", messages.Text(fmt.Sprint(i)))
			}
			sent := 4
			queued := 3 - tc.replaced
			waiting := make(chan error, 1)
			if isBlock {
				go func() { waiting <- hub.Publish(context.Background(), "t", messages.Text("4")) }()
				waitInStack(t, "topics.(*Member).await")
				sent++
			}
			drained := make(chan error, 1)
			go func() { drained <- m.Drain(context.Background()) }()

			done := ca.shutdown(3 * time.Second)
			eventually(t, "the member leaves", func() bool { return hub.Stats().Members == 0 })
			if isBlock {
				select {
				case err := <-waiting:
					if err != nil {
						t.Errorf("the waiting Publish: %v", err)
					}
				case <-time.After(2 * time.Second):
					t.Fatal("a Block publisher still waits for a member that left")
				}
			}
			if got := readText(t, rest); got != "0" {
				t.Fatalf("client got %q, want 0", got)
			}
			if code := closeCode(t, c); code != 1001 {
				t.Fatalf("after the message being written the client got close code %d, want 1001", code)
			}
			if rep := waitShutdown(t, done); rep.Graceful != 1 || rep.Forced != 0 {
				t.Errorf("report %+v, want 1 graceful", rep)
			}
			select {
			case err := <-drained:
				if !errors.Is(err, topics.ErrLeft) {
					t.Errorf("Drain = %v, want ErrLeft", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Drain did not return")
			}
			wantLeft := queued
			if isBlock {
				wantLeft++
			}
			eventually(t, "drops reported", func() bool { return drops.total() >= wantLeft+tc.replaced })
			if got := drops.count(topics.DropLeft); got != wantLeft {
				t.Errorf("DropLeft %d, want %d (drops %+v)", got, wantLeft, drops.drops)
			}
			if got := drops.count(topics.DropReplaced); got != tc.replaced {
				t.Errorf("DropReplaced %d, want %d", got, tc.replaced)
			}
			drops.mu.Lock()
			for _, d := range drops.drops {
				if d.Reason == topics.DropLeft && d.Policy != tc.policy {
					t.Errorf("DropLeft of %q under policy %v, want the member's %v", d.Topic, d.Policy, tc.policy)
				}
			}
			total := len(drops.drops)
			drops.mu.Unlock()
			if received := 1; int64(received)+m.Dropped() != int64(sent) || m.Dropped() != int64(total) {
				t.Errorf("client received %d, member dropped %d, OnDrop saw %d; %d were published to it", received, m.Dropped(), total, sent)
			}
			if st := hub.Stats(); st.Dropped != int64(total) || st.Members != 0 {
				t.Errorf("Stats %+v, want %d dropped and no member", st, total)
			}
			if err := m.Subscribe("u"); !errors.Is(err, topics.ErrLeft) {
				t.Errorf("Subscribe after the shutdown = %v, want ErrLeft", err)
			}
		})
	}
}

// TestTopicsCornerShutdownMidBatchSendsTheWholeBatch: the member's sender
// writes a batch with one writev; the shutdown's 1001 goes "after the
// message it is writing", and "of a batch being written, only the messages
// that did not go to the socket whole count as DropLeft". A shutdown that
// strikes while a batch of three is stalled in the socket lets the batch
// finish: the client gets all of it, then 1001, and nothing is dropped.
func TestTopicsCornerShutdownMidBatchSendsTheWholeBatch(t *testing.T) {
	drops := &dropLog{}
	hub := newHub(t, &topics.Options{OnDrop: drops.add, Policy: topics.DropNewest, Limits: topics.Limits{MaxBytes: 8 << 20}})
	ca := serveCornerApp(t, hub, nil, nil, "t")
	c, m := ca.dial(t)
	publish(t, hub, "t", big("0"))
	rest := stalled(t, c)
	publish(t, hub, "t", big("1"))
	publish(t, hub, "t", big("2"))
	publish(t, hub, "t", messages.Text("3"))
	if got := readText(t, rest); got != "0" {
		t.Fatalf("got %q", got)
	}
	rest = stalled(t, c) // the batch 1, 2, 3 is being written
	done := ca.shutdown(3 * time.Second)
	eventually(t, "the member leaves", func() bool { return hub.Stats().Members == 0 })
	if got := readText(t, rest); got != "1" {
		t.Fatalf("got %q", got)
	}
	for _, want := range []string{"2", "3"} {
		if got := next(t, c); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if code := closeCode(t, c); code != 1001 {
		t.Fatalf("close code %d, want 1001", code)
	}
	waitShutdown(t, done)
	if err := m.Drain(context.Background()); !errors.Is(err, topics.ErrLeft) {
		t.Errorf("Drain = %v, want ErrLeft", err)
	}
	if m.Dropped() != 0 || drops.total() != 0 || hub.Stats().Dropped != 0 {
		t.Errorf("the client got all four messages; dropped %d, OnDrop %+v", m.Dropped(), drops.drops)
	}
}

// TestTopicsCornerLeaveDropsReportedBeforeShutdownReturns: Options.OnDrop
// is called "in the goroutine that gave up on it (a publisher, the
// broker's, or the member's sender when its connection ends)", and the
// sender "runs in c's group", "so no goroutine outlives the connection"
// (docs/topics.md). The drops of a member whose connection a shutdown
// ended are therefore reported before app.Shutdown returns. Here OnDrop
// takes a little while (100 ms) with the DropLeft of a queued message:
// when Shutdown has returned, no OnDrop call may still be running or yet
// to come.
func TestTopicsCornerLeaveDropsReportedBeforeShutdownReturns(t *testing.T) {
	var inOnDrop, reported atomic.Int32
	hub := newHub(t, &topics.Options{Policy: topics.DropNewest, Limits: topics.Limits{MaxBytes: 8 << 20}, OnDrop: func(d topics.Drop) {
		inOnDrop.Add(1)
		defer inOnDrop.Add(-1)
		time.Sleep(100 * time.Millisecond)
		reported.Add(1)
	}})
	ca := serveCornerApp(t, hub, nil, nil, "t")
	c, m := ca.dial(t)
	publish(t, hub, "t", big("0"))
	rest := stalled(t, c)
	publish(t, hub, "t", messages.Text("1")) // queued behind "0"
	done := ca.shutdown(3 * time.Second)
	eventually(t, "the member leaves", func() bool { return m.Dropped() == 1 })
	if got := readText(t, rest); got != "0" {
		t.Fatalf("got %q", got)
	}
	if code := closeCode(t, c); code != 1001 {
		t.Fatalf("close code %d, want 1001", code)
	}
	waitShutdown(t, done)
	busy, n := inOnDrop.Load(), reported.Load()
	eventually(t, "OnDrop returns", func() bool { return inOnDrop.Load() == 0 && reported.Load() == 1 })
	if busy != 0 || n != 1 {
		t.Fatalf("app.Shutdown returned with %d OnDrop call(s) still running and %d of 1 drop reported: the member's leave outlives its connection", busy, n)
	}
}

// TestTopicsCornerSiblingBlockHonoursThePublishersContext: Hub.Publish
// "does not wait for members to read ... Only a Block policy makes it
// wait, bounded by its timeout and by ctx"; Block makes "the publisher
// wait, at most timeout (or until its context ends)". With hubs joined by
// an InProcess broker, the publisher delivers to the other hub's members
// in its own goroutine ("which a slow member there delays instead"): a
// Block member there must still let go of the publisher when the
// publisher's context ends. A handler publishing with its connection's
// context would otherwise outlive a shutdown by the Block timeout.
func TestTopicsCornerSiblingBlockHonoursThePublishersContext(t *testing.T) {
	ip := &topics.InProcess{}
	drops := &dropLog{}
	pubHub := newHub(t, &topics.Options{Broker: ip})
	subHub := newHub(t, &topics.Options{Broker: ip, OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 1, MaxBytes: 8 << 20}})
	ca := serveCornerApp(t, subHub, &topics.MemberOptions{Policy: topics.Block(2 * time.Second)}, nil, "t")
	c, _ := ca.dial(t)
	publish(t, pubHub, "t", big("0"))
	rest := stalled(t, c) // "0" in flight: the member is full

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := pubHub.Publish(ctx, "t", messages.Text("1"))
	took := time.Since(start)
	if err != nil {
		t.Errorf("Publish: %v", err)
	}
	if took > time.Second {
		t.Errorf("Publish with a 100 ms context returned after %v: the other hub's Block member held it for its whole timeout (2 s)", took.Round(10*time.Millisecond))
	}
	if got := readText(t, rest); got != "0" {
		t.Fatalf("got %q", got)
	}
	if n := drops.count(topics.DropTimedOut); n != 1 {
		t.Errorf("DropTimedOut %d, want 1", n)
	}
}

// TestTopicsCornerHandlerPublishUnderShutdownAndClose: members publish
// from their handlers, subscribe and unsubscribe from other goroutines,
// while the application shuts down and the hub closes at the same time.
// Every call returns; afterwards no member is left, no topic has
// subscribers, every Drain says ErrLeft, and the drops add up: the sum of
// Member.Dropped, Stats.Dropped and what OnDrop saw are equal. No
// goroutine outlives the test (goleak in TestMain).
func TestTopicsCornerHandlerPublishUnderShutdownAndClose(t *testing.T) {
	drops := &dropLog{}
	var onDrop atomic.Int64
	hub := newHub(t, &topics.Options{Policy: topics.DropOldest, Limits: topics.Limits{MaxMessages: 8}, OnDrop: func(d topics.Drop) {
		onDrop.Add(int64(d.Count))
		if d.Reason != topics.DropEvicted && d.Reason != topics.DropRefused && d.Reason != topics.DropLeft {
			drops.add(d)
		}
	}})
	ca := serveCornerApp(t, hub, nil, func(ctx context.Context, m *topics.Member, msg messages.Message) error {
		_ = m.Publish(ctx, "room/"+string(msg.Payload), msg, topics.ToSelf())
		return nil
	}, "room/#")
	const n = 4
	var members []*topics.Member
	var clients []*gorilla.Conn
	for range n {
		c, m := ca.dial(t)
		clients = append(clients, c)
		members = append(members, m)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(2)
		wg.Add(1)
		go func() { // the client reads, slowly, until its connection ends
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}()
		go func() { // the client sends
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				if c.WriteMessage(gorilla.TextMessage, []byte(fmt.Sprint(k%3))) != nil {
					return
				}
			}
		}()
		go func() { // subscriptions come and go
			defer wg.Done()
			m := members[i]
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				f := []string{"room/0", "room/+", "#"}[k%3]
				if k%2 == 0 {
					_ = m.Subscribe(f)
				} else {
					_ = m.Unsubscribe(f)
				}
				_ = hub.Publish(context.Background(), "room/1", messages.Text("h"))
				runtime.Gosched()
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	done := ca.shutdown(2 * time.Second)
	closed := make(chan error, 1)
	go func() { closed <- hub.Close() }()
	waitShutdown(t, done)
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	close(stop)
	wg.Wait()
	var sum int64
	for _, m := range members {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := m.Drain(ctx); !errors.Is(err, topics.ErrLeft) {
			t.Errorf("Drain = %v, want ErrLeft", err)
		}
		cancel()
		if s := m.Subscriptions(); len(s) != 0 {
			t.Errorf("a member that left still has %q", s)
		}
		sum += m.Dropped()
	}
	st := hub.Stats()
	if st.Members != 0 {
		t.Errorf("%d members after the shutdown", st.Members)
	}
	for _, topic := range []string{"room/0", "room/1", "x"} {
		if k := hub.Subscribers(topic); k != 0 {
			t.Errorf("%d subscribers to %q", k, topic)
		}
	}
	if st.Dropped != sum || onDrop.Load() != sum {
		t.Errorf("members dropped %d in all, Stats.Dropped %d, OnDrop saw %d", sum, st.Dropped, onDrop.Load())
	}
	if drops.total() != 0 {
		t.Errorf("unexpected drops %+v", drops.drops[:min(3, len(drops.drops))])
	}
	if err := hub.Publish(context.Background(), "room/0", messages.Text("late")); !errors.Is(err, topics.ErrClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
}
