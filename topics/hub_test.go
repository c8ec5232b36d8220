package topics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/wsconn"
)

func TestPublishReachesOtherSubscribers(t *testing.T) {
	hub := newHub(t, nil)
	s := newServer(t)
	a := s.chat(hub, nil, "room/lobby", "room/lobby")
	b := s.join(hub, nil, "room/+")
	c := s.join(hub, nil, "room/other")

	a.send("hello") // the handler publishes it
	if got := b.text(); got != "hello" {
		t.Errorf("b got %q", got)
	}
	a.silent()
	c.silent()

	if err := a.m.Publish(context.Background(), "room/lobby", text("echo"), topics.ToSelf()); err != nil {
		t.Fatal(err)
	}
	if got := a.text(); got != "echo" {
		t.Errorf("a got %q with ToSelf", got)
	}
	if got := b.text(); got != "echo" {
		t.Errorf("b got %q", got)
	}
}

func TestHubPublishFromOutsideAHandler(t *testing.T) {
	hub := newHub(t, nil)
	s := newServer(t)
	a := s.join(hub, nil, "news/#")
	b := s.join(hub, nil, "news/sport")
	if n := hub.Subscribers("news/sport"); n != 2 {
		t.Errorf("Subscribers(news/sport) = %d, want 2", n)
	}
	if n := hub.Subscribers("news"); n != 1 {
		t.Errorf("Subscribers(news) = %d, want 1", n)
	}
	if err := hub.Publish(context.Background(), "news/sport", text("goal")); err != nil {
		t.Fatal(err)
	}
	if a.text() != "goal" || b.text() != "goal" {
		t.Error("a subscriber missed the publish")
	}
	st := hub.Stats()
	if st.Members != 2 || st.Published != 1 || st.Delivered != 2 || st.Dropped != 0 {
		t.Errorf("Stats() = %+v", st)
	}
}

func TestInvalidTopicsAndFiltersAreRefused(t *testing.T) {
	hub := newHub(t, nil)
	s := newServer(t)
	p := s.join(hub, nil)
	for _, f := range []string{"", "a/b#", "#/a", "a+"} {
		if err := p.m.Subscribe(f); !errors.Is(err, topics.ErrInvalidFilter) {
			t.Errorf("Subscribe(%q) = %v, want ErrInvalidFilter", f, err)
		}
	}
	for _, topic := range []string{"", "a/+", "#", "a/\x00"} {
		if err := hub.Publish(context.Background(), topic, text("x")); !errors.Is(err, topics.ErrInvalidTopic) {
			t.Errorf("Publish(%q) = %v, want ErrInvalidTopic", topic, err)
		}
	}
	if n := hub.Subscribers("a/+"); n != 0 {
		t.Errorf("Subscribers of a filter = %d", n)
	}
}

func TestUnsubscribe(t *testing.T) {
	hub := newHub(t, nil)
	s := newServer(t)
	p := s.join(hub, nil, "a", "b")
	if err := p.m.Unsubscribe("a"); err != nil {
		t.Fatal(err)
	}
	if err := p.m.Unsubscribe("never"); err != nil {
		t.Fatal(err)
	}
	if got := p.m.Subscriptions(); len(got) != 1 || got[0] != "b" {
		t.Errorf("Subscriptions() = %q", got)
	}
	_ = hub.Publish(context.Background(), "a", text("a"))
	_ = hub.Publish(context.Background(), "b", text("b"))
	if got := p.text(); got != "b" {
		t.Errorf("got %q after unsubscribing from a", got)
	}
}

func TestSubscriptionsEndWithTheConnection(t *testing.T) {
	hub := newHub(t, nil)
	s := newServer(t)
	a := s.join(hub, nil, "room/lobby", "room/#")
	b := s.join(hub, nil, "room/lobby")
	if n := hub.Subscribers("room/lobby"); n != 2 {
		t.Fatalf("Subscribers = %d", n)
	}
	a.nc.Close() // the client goes away without a word
	eventually(t, "the member left", func() bool { return hub.Subscribers("room/lobby") == 1 })
	<-a.closed
	if st := hub.Stats(); st.Members != 1 {
		t.Errorf("Members = %d", st.Members)
	}
	if got := a.m.Subscriptions(); len(got) != 0 {
		t.Errorf("a left but keeps %q", got)
	}
	if err := a.m.Subscribe("x"); !errors.Is(err, topics.ErrLeft) {
		t.Errorf("Subscribe after leaving = %v", err)
	}
	if err := a.m.Drain(context.Background()); !errors.Is(err, topics.ErrLeft) {
		t.Errorf("Drain after leaving = %v", err)
	}
	_ = hub.Publish(context.Background(), "room/lobby", text("still here"))
	if got := b.text(); got != "still here" {
		t.Errorf("b got %q", got)
	}
}

func TestHubClose(t *testing.T) {
	hub := newHub(t, nil)
	s := newServer(t)
	p := s.join(hub, nil, "t")
	if err := hub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := hub.Publish(context.Background(), "t", text("x")); !errors.Is(err, topics.ErrClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
	if err := p.m.Publish(context.Background(), "t", text("x")); !errors.Is(err, topics.ErrClosed) {
		t.Errorf("Member.Publish after Close = %v", err)
	}
	if err := p.m.Subscribe("u"); !errors.Is(err, topics.ErrClosed) {
		t.Errorf("Subscribe after Close = %v", err)
	}
	if err := hub.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// A client that never reads fills only its own queue: its memory stays
// within its limits, every message it misses is counted, and the
// subscriber that reads gets everything, in order per publisher.
func TestSlowConsumerStaysWithinItsLimits(t *testing.T) {
	var drops dropLog
	hub := newHub(t, &topics.Options{OnDrop: drops.add})
	s := newServer(t)
	// Room for more than the sender's batch in flight (up to 16 messages
	// of 1 KB, which cannot be evicted), so that a full queue always has
	// messages to evict.
	lim := topics.Limits{MaxBytes: 64 << 10, MaxMessages: 64}
	slow := s.join(hub, &topics.MemberOptions{Policy: topics.DropOldest, Limits: lim}, "feed/#")
	fast := s.join(hub, &topics.MemberOptions{Policy: topics.Block(5 * time.Second)}, "feed/+")

	const publishers, each, size = 4, 500, 1000
	total := publishers * each
	var over atomic.Value
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			if b, n := slow.m.Buffered(); b > lim.MaxBytes || n > lim.MaxMessages {
				over.Store(fmt.Sprintf("%d bytes, %d messages", b, n))
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	})

	got := make(map[int]int) // publisher -> next sequence number
	readDone := make(chan error, 1)
	go func() {
		for range total {
			_, b, err := readFrame(fast.nc, fast.br, 10*time.Second)
			if err != nil {
				readDone <- err
				return
			}
			var pub, seq int
			fmt.Sscanf(string(b), "%d/%d", &pub, &seq)
			if got[pub] != seq {
				readDone <- fmt.Errorf("publisher %d: got %d, want %d", pub, seq, got[pub])
				return
			}
			got[pub]++
		}
		readDone <- nil
	}()

	var pubs sync.WaitGroup
	for i := range publishers {
		pubs.Go(func() {
			pad := strings.Repeat("x", size)
			for j := range each {
				msg := fmt.Sprintf("%d/%d/%s", i, j, pad)
				if err := hub.Publish(context.Background(), fmt.Sprintf("feed/%d", i), text(msg)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	pubs.Wait()
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	close(stop)
	watch.Wait()
	if v := over.Load(); v != nil {
		t.Errorf("the slow member held %s, over its limits", v)
	}
	bytes, msgs := slow.m.Buffered()
	if msgs != lim.MaxMessages && bytes+size+20 <= lim.MaxBytes {
		t.Errorf("the slow member holds %d bytes in %d messages: not full", bytes, msgs)
	}
	if d := slow.m.Dropped(); d != int64(total-msgs) {
		t.Errorf("slow member dropped %d, want %d", d, total-msgs)
	}
	if fast.m.Dropped() != 0 {
		t.Errorf("fast member dropped %d", fast.m.Dropped())
	}
	// Messages the sender already handed to the socket (a batch of up to
	// 16) cannot be evicted; a publish that finds only those in the way is
	// refused instead.
	evicted, refused := drops.count(topics.DropEvicted), drops.count(topics.DropRefused)
	if st := hub.Stats(); st.Dropped != slow.m.Dropped() || int(st.Dropped) != drops.total() || evicted+refused != drops.total() || evicted == 0 {
		t.Errorf("hub counted %d drops, OnDrop saw %d (%d evicted, %d refused)", st.Dropped, drops.total(), evicted, refused)
	}
	for _, d := range drops.drops {
		if d.Member != slow.m || !strings.HasPrefix(d.Topic, "feed/") || d.Bytes < size {
			t.Fatalf("drop %+v", d)
		}
	}
}

func TestDisconnectPolicyClosesTheConnection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy topics.Policy
		want   frames.CloseCode
	}{
		{"default", topics.Policy{}, frames.CloseTryAgainLater},
		{"1008", topics.Disconnect(frames.ClosePolicyViolation), frames.ClosePolicyViolation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var drops dropLog
			hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 3}})
			s := newServer(t)
			p := s.join(hub, &topics.MemberOptions{Policy: tc.policy}, "t")
			_ = hub.Publish(context.Background(), "t", text("0"))
			p.hold()
			for i := 1; i < 6; i++ {
				if err := hub.Publish(context.Background(), "t", text(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			// The message being written when the queue overflowed still
			// arrives; then the CLOSE frame, ahead of the queued ones.
			if got := p.text(); got != "0" {
				t.Errorf("first message %q", got)
			}
			h, b := p.read()
			if h.Op != frames.OpClose {
				t.Fatalf("got %v frame %q, want close", h.Op, b)
			}
			code, reason, err := frames.ParseClose(b)
			if err != nil || code != tc.want {
				t.Errorf("close %v %q (%v), want %v", code, reason, err, tc.want)
			}
			p.nc.Close()
			if err := <-p.closed; wsconn.CloseStatus(err) != tc.want {
				t.Errorf("Serve returned %v", err)
			}
			eventually(t, "the member left", func() bool { return hub.Stats().Members == 0 })
			// 3 and later did not fit; 1 and 2 were discarded with the member.
			if n := drops.count(topics.DropDisconnected); n != 5 || p.m.Dropped() != 5 {
				t.Errorf("%d drops reported, member counted %d, want 5", n, p.m.Dropped())
			}
		})
	}
}

func TestDrain(t *testing.T) {
	hub := newHub(t, nil)
	s := newServer(t)
	p := s.join(hub, nil, "t")
	if err := p.m.Drain(context.Background()); err != nil {
		t.Fatalf("Drain with nothing queued = %v", err)
	}
	for i := range 3 {
		_ = hub.Publish(context.Background(), "t", text(fmt.Sprint(i)))
	}
	if _, n := p.m.Buffered(); n != 3 {
		t.Fatalf("Buffered() = %d messages", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.m.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain while the client does not read = %v", err)
	}
	go func() {
		for range 3 {
			if _, _, err := readFrame(p.nc, p.br, 5*time.Second); err != nil {
				return
			}
		}
	}()
	if err := p.m.Drain(context.Background()); err != nil {
		t.Fatalf("Drain = %v", err)
	}
	if b, n := p.m.Buffered(); b != 0 || n != 0 {
		t.Errorf("Buffered() = %d, %d after Drain", b, n)
	}
}

// Drain ends with ErrLeft when the connection does, and by then the
// discarded messages have been reported, so a caller counting drops after
// Drain sees them all.
func TestDrainEndsWhenTheConnectionEnds(t *testing.T) {
	drops := &dropLog{}
	hub := newHub(t, &topics.Options{OnDrop: drops.add})
	s := newServer(t)
	p := s.join(hub, nil, "t")
	_ = hub.Publish(context.Background(), "t", text("x"))
	done := make(chan error, 1)
	go func() { done <- p.m.Drain(context.Background()) }()
	time.Sleep(10 * time.Millisecond)
	p.nc.Close()
	if err := <-done; !errors.Is(err, topics.ErrLeft) {
		t.Errorf("Drain = %v, want ErrLeft", err)
	}
	if n := drops.count(topics.DropLeft); n != 1 {
		t.Errorf("when Drain returned, OnDrop had seen %d messages dropped as the member left, want 1", n)
	}
	if err := p.m.Drain(context.Background()); !errors.Is(err, topics.ErrLeft) {
		t.Errorf("Drain after leaving = %v, want ErrLeft", err)
	}
}

func TestFirstDropIsLoggedWithoutOnDrop(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	hub := newHub(t, &topics.Options{Logger: log, Policy: topics.DropNewest, Limits: topics.Limits{MaxMessages: 1}})
	s := newServer(t)
	p := s.join(hub, nil, "t")
	for range 5 {
		_ = hub.Publish(context.Background(), "t", text("x"))
	}
	if p.m.Dropped() != 4 {
		t.Errorf("Dropped() = %d", p.m.Dropped())
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if strings.Count(out, "member is dropping messages") != 1 || !strings.Contains(out, "reason=refused") {
		t.Errorf("log:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// recorder wraps a Broker and records the messages its links carry.
type recorder struct {
	topics.Broker
	mu   sync.Mutex
	sent []*wsconn.Prepared
	got  []*wsconn.Prepared
}

func (r *recorder) Open(deliver func(context.Context, topics.Publication)) (topics.Link, error) {
	l, err := r.Broker.Open(func(ctx context.Context, p topics.Publication) {
		r.mu.Lock()
		r.got = append(r.got, p.Message)
		r.mu.Unlock()
		deliver(ctx, p)
	})
	return &recordingLink{Link: l, r: r}, err
}

type recordingLink struct {
	topics.Link
	r *recorder
}

func (l *recordingLink) Publish(ctx context.Context, p topics.Publication) error {
	l.r.mu.Lock()
	l.r.sent = append(l.r.sent, p.Message)
	l.r.mu.Unlock()
	return l.Link.Publish(ctx, p)
}

func TestInProcessBrokerConnectsHubs(t *testing.T) {
	rec := &recorder{Broker: &topics.InProcess{}}
	hubA := newHub(t, &topics.Options{Broker: rec})
	hubB := newHub(t, &topics.Options{Broker: rec})
	hubC := newHub(t, &topics.Options{Broker: rec})
	s := newServer(t)
	a := s.chat(hubA, nil, "room/1", "room/1")
	b := s.join(hubB, nil, "room/+")
	b2 := s.join(hubB, nil, "room/#")
	c := s.join(hubC, nil, "other")

	a.send("hi")
	if b.text() != "hi" || b2.text() != "hi" {
		t.Error("hub B's members missed the publish")
	}
	a.silent()
	c.silent()
	rec.mu.Lock()
	if len(rec.sent) != 1 || len(rec.got) != 1 || rec.sent[0] != rec.got[0] {
		t.Errorf("sent %d and delivered %d messages; shared: %v", len(rec.sent), len(rec.got), len(rec.got) == 1 && rec.sent[0] == rec.got[0])
	}
	rec.mu.Unlock()

	// Interest follows the last subscriber out.
	b.nc.Close()
	b2.nc.Close()
	eventually(t, "hub B's members left", func() bool { return hubB.Stats().Members == 0 })
	_ = hubA.Publish(context.Background(), "room/1", text("again"))
	rec.mu.Lock()
	if len(rec.got) != 1 {
		t.Errorf("hub B still receives publishes after its members left")
	}
	rec.mu.Unlock()
}

func TestMemberPolicyOverridesAndSubscriptionPolicyWins(t *testing.T) {
	var drops dropLog
	hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 2}})
	s := newServer(t)
	p := s.join(hub, &topics.MemberOptions{Policy: topics.DropNewest})
	if err := p.m.SubscribeWith("state/+", topics.KeepLatest); err != nil {
		t.Fatal(err)
	}
	if err := p.m.Subscribe("chat"); err != nil {
		t.Fatal(err)
	}
	_ = hub.Publish(context.Background(), "state/x", text("x0"))
	p.hold()
	for i := 1; i < 4; i++ {
		_ = hub.Publish(context.Background(), "state/x", text(fmt.Sprint("x", i)))
	}
	_ = hub.Publish(context.Background(), "chat", text("c"))
	if drops.count(topics.DropReplaced) != 2 || drops.count(topics.DropRefused) != 1 {
		t.Errorf("drops: replaced %d, refused %d", drops.count(topics.DropReplaced), drops.count(topics.DropRefused))
	}
	if got := p.text(); got != "x0" {
		t.Errorf("first %q", got)
	}
	if got := p.text(); got != "x3" {
		t.Errorf("latest %q", got)
	}
}

// TestIdleMembersHoldNoGoroutine: a member's sender task runs only while
// its queue has messages, so a subscriber waiting for news costs its
// connection's one goroutine and nothing more.
func TestIdleMembersHoldNoGoroutine(t *testing.T) {
	hub := newHub(t, nil)
	s := newServer(t)
	before := runtime.NumGoroutine()
	const n = 20
	peers := make([]*peer, n)
	for i := range peers {
		peers[i] = s.join(hub, nil, "news")
	}
	// At most: goroutines of earlier tests may still be ending.
	oneEach := func() bool { return runtime.NumGoroutine()-before <= n }
	eventually(t, "one goroutine per joined connection", oneEach)
	for round := range 3 {
		if err := hub.Publish(context.Background(), "news", text(fmt.Sprint("item ", round))); err != nil {
			t.Fatal(err)
		}
		for _, p := range peers {
			if got, want := p.text(), fmt.Sprint("item ", round); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		eventually(t, "senders gone once the queues are empty", oneEach)
	}
}
