package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/wsconn"
)

var matchTable = []struct {
	filter, topic string
	want          bool
}{
	{"a", "a", true},
	{"a", "b", false},
	{"a", "a/b", false},
	{"a/b", "a", false},
	{"a/b", "a/b", true},
	{"+", "a", true},
	{"+", "a/b", false},
	{"+", "/a", false},
	{"+/+", "a/b", true},
	{"+/+", "/b", true},
	{"+/+", "a/", true},
	{"+/+", "/", true},
	{"+/+", "a", false},
	{"+/+", "a/b/c", false},
	{"a/+", "a/b", true},
	{"a/+", "a/", true},
	{"a/+", "a", false},
	{"a/+/c", "a/b/c", true},
	{"a/+/c", "a//c", true},
	{"a/+/c", "a/b/d", false},
	{"#", "a", true},
	{"#", "a/b/c", true},
	{"#", "/", true},
	{"a/#", "a", true},
	{"a/#", "a/b", true},
	{"a/#", "a/b/c", true},
	{"a/#", "ab", false},
	{"a/#", "b/a", false},
	{"a/+/#", "a", false},
	{"a/+/#", "a/b", true},
	{"a/+/#", "a/b/c/d", true},
	{"+/#", "a", true},
	{"/#", "/a", true},
	{"/#", "a", false},
	{"a//b", "a//b", true},
	{"a//b", "a/b", false},
	{"a/", "a/", true},
	{"a/", "a", false},
	// '$' topics: hidden from leading wildcards only.
	{"#", "$sys/load", false},
	{"+/load", "$sys/load", false},
	{"$sys/#", "$sys/load", true},
	{"$sys/+", "$sys/load", true},
	{"a/#", "a/$b", true},
	{"+/$b", "a/$b", true},
	// Invalid on either side: no match.
	{"a/b#", "a/b#", false},
	{"a/#/b", "a/x/b", false},
	{"a", "a/+", false},
	{"", "", false},
	// Non-ASCII levels.
	{"salle/+", "salle/café", true},
	{"ルーム/#", "ルーム/一/二", true},
}

func TestMatch(t *testing.T) {
	for _, tc := range matchTable {
		if got := Match(tc.filter, tc.topic); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

// The trie must agree with Match for every filter and topic of the table,
// with all the filters subscribed at once.
func TestTrieAgreesWithMatch(t *testing.T) {
	var tr trie
	members := map[string]*Member{}
	var filters, topics []string
	for _, tc := range matchTable {
		if checkFilter(tc.filter) == nil && members[tc.filter] == nil {
			m := &Member{}
			members[tc.filter] = m
			filters = append(filters, tc.filter)
			tr.add(&subscription{m: m, filter: tc.filter, policy: DropOldest})
		}
		if CheckTopic(tc.topic) == nil && !slices.Contains(topics, tc.topic) {
			topics = append(topics, tc.topic)
		}
	}
	for _, topic := range topics {
		var want, got []string
		for _, f := range filters {
			if Match(f, topic) {
				want = append(want, f)
			}
		}
		for _, n := range tr.match(topic, nil) {
			for _, s := range n.subs {
				got = append(got, s.filter)
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("topic %q: trie matched %q, Match matched %q", topic, got, want)
		}
	}
	for _, f := range filters {
		if !tr.remove(f, members[f]) {
			t.Errorf("remove(%q) found nothing", f)
		}
	}
	if !tr.root.empty() {
		t.Errorf("trie not empty after removing every subscription: %+v", tr.root)
	}
}

func TestMatchOrderIsSpecificity(t *testing.T) {
	var tr trie
	filters := []string{"#", "a/#", "+/b", "a/+", "a/b", "+/+", "+/#"}
	for _, f := range filters {
		tr.add(&subscription{m: &Member{}, filter: f})
	}
	var got []string
	for _, n := range tr.match("a/b", nil) {
		got = append(got, n.subs[0].filter)
	}
	want := []string{"a/b", "a/+", "a/#", "+/b", "+/+", "+/#", "#"}
	if !slices.Equal(got, want) {
		t.Errorf("match order %q, want %q", got, want)
	}
}

func TestInvalidFiltersAndTopics(t *testing.T) {
	long := strings.Repeat("a", MaxTopicLen+1)
	for _, f := range []string{"", "a/b+", "a/+b", "#/a", "a/#/b", "a#", "##", "++", "a\x00b", "\xff", long} {
		if err := checkFilter(f); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("checkFilter(%q) = %v, want ErrInvalidFilter", f, err)
		}
	}
	for _, f := range []string{"a", "+", "#", "a/+/b/#", "/", "//", "+/+/+", "$sys/#", "a b/c.d", strings.Repeat("a", MaxTopicLen)} {
		if err := checkFilter(f); err != nil {
			t.Errorf("checkFilter(%q) = %v, want nil", f, err)
		}
	}
	for _, topic := range []string{"", "a/+", "#", "a/b#", "a+", "a\x00", "\xc3", long} {
		if err := CheckTopic(topic); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("CheckTopic(%q) = %v, want ErrInvalidTopic", topic, err)
		}
	}
	for _, topic := range []string{"a", "/", "a//b", "$sys/x", "a*b/>", "café"} {
		if err := CheckTopic(topic); err != nil {
			t.Errorf("CheckTopic(%q) = %v, want nil", topic, err)
		}
	}
	if err := checkFilter("a/#/b"); err == nil || !strings.Contains(err.Error(), "last level") {
		t.Errorf("error %v does not say why", err)
	}
}

func TestQueueRing(t *testing.T) {
	var q queue
	var next, popped uint64
	for round := range 50 {
		for range round%7 + 1 {
			if q.n == 8 {
				break
			}
			if pos := q.push(entry{topic: fmt.Sprint(next)}, 8); pos != next {
				t.Fatalf("push returned %d, want %d", pos, next)
			}
			next++
			if q.n > 8 {
				t.Fatalf("ring holds %d", q.n)
			}
		}
		if q.n > 0 {
			if e := q.at(popped); e.topic != fmt.Sprint(popped) {
				t.Fatalf("at(%d) = %q", popped, e.topic)
			}
		}
		for range round%5 + 1 {
			if q.n == 0 {
				break
			}
			e, pos := q.pop()
			if pos != popped || e.topic != fmt.Sprint(popped) {
				t.Fatalf("pop = %q at %d, want %d", e.topic, pos, popped)
			}
			popped++
		}
	}
	for q.n > 0 {
		q.pop()
	}
	if len(q.buf) > 16 {
		t.Errorf("an empty queue keeps %d slots", len(q.buf))
	}
	for _, e := range q.buf {
		if e != (entry{}) {
			t.Fatalf("a popped slot still references %q", e.topic)
		}
	}
}

// unit is a hub with members that have no connection and no sender, so
// that queue contents can be checked exactly.
type unit struct {
	h     *Hub
	drops []Drop
}

func newUnit(t *testing.T, lim Limits) *unit {
	t.Helper()
	u := &unit{}
	h, err := NewHub(&Options{Limits: lim, OnDrop: func(d Drop) { u.drops = append(u.drops, d) }})
	if err != nil {
		t.Fatal(err)
	}
	u.h = h
	return u
}

func (u *unit) member(filter string, p Policy) *Member {
	m := &Member{hub: u.h, policy: p, maxBytes: u.h.limits.MaxBytes, maxMsgs: u.h.limits.MaxMessages}
	if err := m.Subscribe(filter); err != nil {
		panic(err)
	}
	return m
}

func (u *unit) publish(t *testing.T, topic, body string, opts ...PublishOption) {
	t.Helper()
	if err := u.h.Publish(context.Background(), topic, messages.Text(body), opts...); err != nil {
		t.Fatal(err)
	}
}

// queued lists the payloads a member holds, in order.
func queued(m *Member) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for i := range m.q.n {
		out = append(out, string(m.q.at(m.q.base+uint64(i)).p.Message().Payload))
	}
	return out
}

func (u *unit) reasons() map[DropReason]int {
	r := map[DropReason]int{}
	for _, d := range u.drops {
		r[d.Reason]++
	}
	return r
}

func TestPolicyQueues(t *testing.T) {
	lim := Limits{MaxMessages: 3, MaxBytes: 1 << 20}
	bodies := []string{"0", "1", "2", "3", "4", "5"}

	t.Run("DropOldest", func(t *testing.T) {
		u := newUnit(t, lim)
		m := u.member("t", DropOldest)
		for _, b := range bodies {
			u.publish(t, "t", b)
		}
		if got := queued(m); !slices.Equal(got, []string{"3", "4", "5"}) {
			t.Errorf("queue %q", got)
		}
		if r := u.reasons(); r[DropEvicted] != 3 || len(u.drops) != 3 {
			t.Errorf("drops %v", r)
		}
	})
	t.Run("DropNewest", func(t *testing.T) {
		u := newUnit(t, lim)
		m := u.member("t", DropNewest)
		for _, b := range bodies {
			u.publish(t, "t", b)
		}
		if got := queued(m); !slices.Equal(got, []string{"0", "1", "2"}) {
			t.Errorf("queue %q", got)
		}
		if r := u.reasons(); r[DropRefused] != 3 || len(u.drops) != 3 {
			t.Errorf("drops %v", r)
		}
	})
	t.Run("KeepLatest", func(t *testing.T) {
		u := newUnit(t, lim)
		m := u.member("price/+", KeepLatest)
		u.publish(t, "price/a", "a1")
		u.publish(t, "price/b", "b1")
		u.publish(t, "price/a", "a2")
		u.publish(t, "price/a", "a3")
		u.publish(t, "price/b", "b2")
		if got := queued(m); !slices.Equal(got, []string{"a3", "b2"}) {
			t.Errorf("queue %q", got)
		}
		// Explicit keys coalesce across topics.
		u.publish(t, "price/c", "c1", Key("k"))
		u.publish(t, "price/d", "d1", Key("k"))
		if got := queued(m); !slices.Equal(got, []string{"a3", "b2", "d1"}) {
			t.Errorf("queue %q", got)
		}
		// Full with a new key: the oldest goes.
		u.publish(t, "price/e", "e1")
		if got := queued(m); !slices.Equal(got, []string{"b2", "d1", "e1"}) {
			t.Errorf("queue %q", got)
		}
		// A queued key still coalesces; the evicted one was forgotten.
		u.publish(t, "price/b", "b3")
		u.publish(t, "price/a", "a4")
		if got := queued(m); !slices.Equal(got, []string{"d1", "e1", "a4"}) {
			t.Errorf("queue %q", got)
		}
		r := u.reasons()
		if r[DropReplaced] != 5 || r[DropEvicted] != 2 || m.Dropped() != 7 {
			t.Errorf("drops %v, member counted %d", r, m.Dropped())
		}
	})
	t.Run("Bytes", func(t *testing.T) {
		u := newUnit(t, Limits{MaxMessages: 100, MaxBytes: 25})
		m := u.member("t", DropOldest)
		for _, b := range []string{"aaaaaaaa", "bbbbbbbb", "cccccccc"} { // 10 bytes each on the wire
			u.publish(t, "t", b)
		}
		if got := queued(m); !slices.Equal(got, []string{"bbbbbbbb", "cccccccc"}) {
			t.Errorf("queue %q", got)
		}
		if bytes, msgs := m.Buffered(); bytes != 20 || msgs != 2 {
			t.Errorf("Buffered() = %d, %d", bytes, msgs)
		}
		u.publish(t, "t", strings.Repeat("x", 30))
		if r := u.reasons(); r[DropTooLarge] != 1 {
			t.Errorf("drops %v", r)
		}
	})
	t.Run("Disconnect", func(t *testing.T) {
		u := newUnit(t, lim)
		m := u.member("t", Disconnect(1008))
		for _, b := range bodies {
			u.publish(t, "t", b)
		}
		if m.closeCode != 1008 {
			t.Errorf("close code %v", m.closeCode)
		}
		if r := u.reasons(); r[DropDisconnected] != 3 {
			t.Errorf("drops %v", r)
		}
	})
	t.Run("Block", func(t *testing.T) {
		u := newUnit(t, lim)
		m := u.member("t", Block(30*time.Millisecond))
		for _, b := range bodies[:3] {
			u.publish(t, "t", b)
		}
		start := time.Now()
		u.publish(t, "t", "3")
		if d := time.Since(start); d < 30*time.Millisecond {
			t.Errorf("publish returned after %v", d)
		}
		if r := u.reasons(); r[DropTimedOut] != 1 {
			t.Errorf("drops %v", r)
		}
		// Room made while the publisher waits lets the message in.
		go func() {
			for {
				m.mu.Lock()
				if m.space != nil {
					m.pop()
					m.count--
					m.bytes -= 3
					close(m.space)
					m.space = nil
					m.mu.Unlock()
					return
				}
				m.mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
		m2 := u.member("t", DropNewest) // not held up by m
		u.publish(t, "t", "4")
		if got := queued(m); !slices.Equal(got, []string{"1", "2", "4"}) {
			t.Errorf("queue %q", got)
		}
		if got := queued(m2); !slices.Equal(got, []string{"4"}) {
			t.Errorf("other member's queue %q", got)
		}
	})
}

func TestOverlappingSubscriptionsDeliverOnce(t *testing.T) {
	u := newUnit(t, Limits{MaxMessages: 2})
	m := u.member("a/b", DropNewest)
	for _, f := range []string{"a/+", "#"} {
		if err := m.SubscribeWith(f, DropOldest); err != nil {
			t.Fatal(err)
		}
	}
	if n := u.h.Subscribers("a/b"); n != 1 {
		t.Errorf("Subscribers = %d", n)
	}
	for _, b := range []string{"1", "2", "3"} {
		u.publish(t, "a/b", b)
	}
	// Once each, under the policy of "a/b", the most specific.
	if got := queued(m); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("queue %q", got)
	}
	// "x" matches only "#".
	u.publish(t, "x", "x")
	if got := queued(m); !slices.Equal(got, []string{"2", "x"}) {
		t.Errorf("queue %q", got)
	}
	if got := m.Subscriptions(); !slices.Equal(got, []string{"#", "a/+", "a/b"}) {
		t.Errorf("Subscriptions() = %q", got)
	}
}

// A publish is framed once: every member queues the same *Prepared.
func TestEncodeOnce(t *testing.T) {
	u := newUnit(t, Limits{})
	var ms []*Member
	for _, f := range []string{"a/b", "a/+", "#", "a/#"} {
		ms = append(ms, u.member(f, DropOldest))
	}
	u.publish(t, "a/b", "hello")
	var first *wsconn.Prepared
	for _, m := range ms {
		p := m.q.at(m.q.base).p
		if first == nil {
			first = p
		} else if p != first {
			t.Fatalf("members got different *Prepared values")
		}
	}
	if allocs := testing.AllocsPerRun(100, func() {
		u.h.deliver(context.Background(), &Publication{Topic: "a/b", Message: first}, nil, false)
		for _, m := range ms {
			m.mu.Lock()
			m.pop()
			m.count, m.bytes = 0, 0
			m.mu.Unlock()
		}
	}); allocs != 0 {
		t.Errorf("delivering to 4 members allocates %.0f times", allocs)
	}
}
