package topics_test

// Adversarial checks of docs/topics.md beyond the existing tests: members
// leaving while a publish waits for them, a connection ending in the
// middle of a batch, KeepLatest at its byte limit, Close while a Block
// publisher waits, and subscribe/unsubscribe races seen from the broker.
// They reuse the helpers of helpers_test.go (pipes, the Block scene) and
// promises_test.go (loopback TCP with gorilla clients).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
)

// advLeft waits until m's connection has ended and its drops are reported.
func advLeft(t *testing.T, m *topics.Member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := m.Drain(ctx)
		if errors.Is(err, topics.ErrLeft) {
			return
		}
		if err != nil {
			t.Fatalf("waiting for the member to leave: %v", err)
		}
		// Drained, but not left yet: the connection is still ending.
		select {
		case <-ctx.Done():
			t.Fatal("the member did not leave")
		case <-time.After(time.Millisecond):
		}
	}
}

// TestAdvBlockWaiterWhoseMemberLeavesIsCounted: "No policy drops
// silently. Every message that does not reach a member is counted"
// (docs/topics.md, Seeing drops). A Block publisher waits for a member
// whose connection then ends: the message it waited with never reaches
// the member and must be reported (as DropLeft or DropTimedOut), like the
// message that was in flight.
func TestAdvBlockWaiterWhoseMemberLeavesIsCounted(t *testing.T) {
	b := blockWaiting(t, context.Background(), "0", "1") // "0" stays in flight
	drops, slow, slowM, published := b.drops, b.slow, b.slowM, b.published
	_ = slow.Close()
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Publish still waits for a member that left")
	}
	advLeft(t, slowM)
	// The slow client got neither "0" (cut in the middle) nor "1".
	if n := slowM.Dropped(); n != 2 || drops.total() != 2 {
		t.Fatalf("the member that left dropped %d (OnDrop saw %d: %d left, %d timed out), want 2: the message its publisher waited with is not counted",
			n, drops.total(), drops.count(topics.DropLeft), drops.count(topics.DropTimedOut))
	}
}

// TestAdvConnectionEndingMidBatchCountsOnlyUndelivered: Stats.Dropped
// "counts messages members did not get" and a member that leaves reports
// "what was still queued" as DropLeft. Over a pipe (each frame is written
// only as the client reads it), a client reads two messages of a batch of
// five and goes away: three did not reach it, and no more may be counted.
func TestAdvConnectionEndingMidBatchCountsOnlyUndelivered(t *testing.T) {
	var drops dropLog
	hub := newHub(t, &topics.Options{OnDrop: drops.add, Policy: topics.DropNewest})
	s := newServer(t)
	p := s.join(hub, nil, "t")
	publish(t, hub, "t", text("m0"))
	p.hold() // m0 is being written, alone in its batch
	for i := 1; i <= 5; i++ {
		publish(t, hub, "t", text(fmt.Sprint("m", i)))
	}
	// The rest of m0; the sender then writes m1..m5 as one batch.
	for _, want := range []string{"m0", "m1", "m2"} {
		if got := p.text(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	_ = p.nc.Close()
	advLeft(t, p.m)
	if n := p.m.Dropped(); n != 3 || drops.count(topics.DropLeft) != 3 {
		t.Fatalf("the client read 3 of 6 messages; the member reports %d dropped (%d DropLeft), want 3", n, drops.count(topics.DropLeft))
	}
	if st := hub.Stats(); st.Dropped != 3 {
		t.Fatalf("hub counts %d dropped, want 3", st.Dropped)
	}
}

// TestAdvKeepLatestKeepsTheNewestValue: KeepLatest is "for state feeds,
// where only the newest value of each thing matters"; "a message replaces
// the queued one with the same key, in place" and "the newest message ...
// goes out sooner". When the replacing message is larger and the queue is
// then over MaxBytes, the hub must not throw away the very value it just
// queued (leaving the client with no value at all for that key) while
// keeping an older value of another key.
func TestAdvKeepLatestKeepsTheNewestValue(t *testing.T) {
	var drops dropLog
	hub := newHub(t, &topics.Options{OnDrop: drops.add})
	s := newServer(t)
	p := s.join(hub, &topics.MemberOptions{Policy: topics.KeepLatest, Limits: topics.Limits{MaxBytes: 100, MaxMessages: 64}}, "p/+")
	publish(t, hub, "p/z", text("z:"+strings.Repeat("z", 8)))   // 12 bytes on the wire
	p.hold()                                                    // in flight
	publish(t, hub, "p/a", text("a1"))                          // 4
	publish(t, hub, "p/b", text("b1:"+strings.Repeat("b", 57))) // 62: 78 held
	if b, n := p.m.Buffered(); b != 78 || n != 3 {
		t.Fatalf("Buffered() = %d, %d; want 78, 3", b, n)
	}
	publish(t, hub, "p/a", text("a2:"+strings.Repeat("a", 27))) // 32 replaces 4: 106 > 100
	if b, _ := p.m.Buffered(); b > 100 {
		t.Fatalf("member holds %d bytes, limit 100", b)
	}
	publish(t, hub, "p/end", text("end"))
	var got []string
	for {
		name, _, _ := strings.Cut(p.text(), ":")
		if name == "end" {
			break
		}
		got = append(got, name)
	}
	hasA2 := false
	for _, g := range got {
		hasA2 = hasA2 || g == "a2"
	}
	if !hasA2 {
		t.Fatalf("client got %q: the newest value of p/a was dropped (%d replaced, %d evicted) while the older p/b stayed",
			got, drops.count(topics.DropReplaced), drops.count(topics.DropEvicted))
	}
}

// TestAdvCloseWhileBlockPublisherWaits: "after Close, Publish and
// Subscribe fail with ErrClosed while members keep sending what they had
// queued". Close does not wait for a Block publisher; the publisher's
// accepted message still reaches the member once it reads, and a publish
// after Close is refused.
func TestAdvCloseWhileBlockPublisherWaits(t *testing.T) {
	b := blockWaiting(t, context.Background(), "0", "1")
	hub, drops, slow, rest, published := b.hub, b.drops, b.slow, b.rest, b.published
	closed := make(chan error, 1)
	go func() { closed <- hub.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for a Block publisher")
	}
	if err := hub.Publish(context.Background(), "t", messages.Text("2")); !errors.Is(err, topics.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if got := readText(t, rest); got != "0" {
		t.Fatalf("slow client got %q", got)
	}
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("the waiting Publish: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting Publish did not return once there was room")
	}
	if got := next(t, slow); got != "1" {
		t.Fatalf("slow client got %q", got)
	}
	if drops.total() != 0 {
		t.Fatalf("drops %+v", drops.drops)
	}
}

// advInterest is a Broker wrapper that checks the Link contract from the
// hub's side: "The hub calls [Subscribe] when the first local subscription
// to filter is made, and calls it at most once per filter until
// Unsubscribe", and Unsubscribe when the last ends.
type advInterest struct {
	topics.Broker
	mu       sync.Mutex
	on       map[string]bool
	problems []string
}

func (b *advInterest) Open(deliver func(context.Context, topics.Publication)) (topics.Link, error) {
	l, err := b.Broker.Open(deliver)
	return &advInterestLink{Link: l, b: b}, err
}

type advInterestLink struct {
	topics.Link
	b *advInterest
}

func (l *advInterestLink) Subscribe(f string) error {
	l.b.mu.Lock()
	if l.b.on[f] {
		l.b.problems = append(l.b.problems, "Subscribe("+f+") while subscribed")
	}
	l.b.on[f] = true
	l.b.mu.Unlock()
	return l.Link.Subscribe(f)
}

func (l *advInterestLink) Unsubscribe(f string) error {
	l.b.mu.Lock()
	if !l.b.on[f] {
		l.b.problems = append(l.b.problems, "Unsubscribe("+f+") while not subscribed")
	}
	l.b.on[f] = false
	l.b.mu.Unlock()
	return l.Link.Unsubscribe(f)
}

// TestAdvSubscribeRacesKeepBrokerInterestExact: members subscribe and
// unsubscribe overlapping filters from many goroutines while a publisher
// on another hub publishes and members leave; the broker hears each
// filter's first Subscribe and last Unsubscribe exactly, ends with no
// interest, and the hub with no members and no subscribers.
func TestAdvSubscribeRacesKeepBrokerInterestExact(t *testing.T) {
	ip := &topics.InProcess{}
	watch := &advInterest{Broker: ip, on: map[string]bool{}}
	hub := newHub(t, &topics.Options{Broker: watch, Policy: topics.DropOldest})
	other := newHub(t, &topics.Options{Broker: ip})
	s := newServer(t)
	filters := []string{"a/b", "a/+", "a/#", "#", "+/b"}
	var peers []*peer
	for range 6 {
		peers = append(peers, s.join(hub, nil))
	}
	stop := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = other.Publish(context.Background(), "a/b", text(fmt.Sprint(i)))
		}
	}()
	var wg sync.WaitGroup
	for i, p := range peers {
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 300 {
					f := filters[(i+g+k)%len(filters)]
					if k%2 == 0 {
						_ = p.m.Subscribe(f)
					} else {
						_ = p.m.Unsubscribe(filters[(i+k)%len(filters)])
					}
					if i%3 == 0 && g == 0 && k == 150 {
						_ = p.nc.Close() // this member leaves in the middle
					}
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	<-pubDone
	for _, p := range peers {
		_ = p.nc.Close()
	}
	for _, p := range peers {
		advLeft(t, p.m)
	}
	if st := hub.Stats(); st.Members != 0 {
		t.Fatalf("%d members after all left", st.Members)
	}
	for _, f := range filters {
		if n := hub.Subscribers(strings.ReplaceAll(strings.ReplaceAll(f, "+", "x"), "#", "x")); n != 0 {
			t.Errorf("%d subscribers to %q after all left", n, f)
		}
	}
	watch.mu.Lock()
	defer watch.mu.Unlock()
	for _, p := range watch.problems {
		t.Error(p)
	}
	for f, on := range watch.on {
		if on {
			t.Errorf("the broker still has interest in %q after every member left", f)
		}
	}
}
