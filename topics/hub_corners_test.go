package topics_test

// Corner cases of the hub checked against models written from
// docs/topics.md: a reference matcher for topics.Match and the trie
// (Hub.Subscribers, most specific policy), a queue model for the drop
// policies at their limits, and delivery over loopback WebSockets. They
// reuse the helpers of helpers_test.go (pipes) and promises_test.go
// (loopback TCP with gorilla clients).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
)

// ---- reference rules, from docs/topics.md ----

func refValidCommon(s string) bool {
	return s != "" && len(s) <= topics.MaxTopicLen && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func refValidTopic(s string) bool {
	return refValidCommon(s) && !strings.ContainsAny(s, "+#")
}

func refValidFilter(s string) bool {
	if !refValidCommon(s) {
		return false
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		if l == "+" || l == "#" {
			if l == "#" && i != len(levels)-1 {
				return false
			}
			continue
		}
		if strings.ContainsAny(l, "+#") {
			return false
		}
	}
	return true
}

func refMatch(filter, topic string) bool {
	if !refValidFilter(filter) || !refValidTopic(topic) {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(tl[0], "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, f := range fl {
		if f == "#" {
			return i <= len(tl)
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// refMoreSpecific reports whether filter a is more specific than b, both
// matching the same topic: level by level from the left, a literal level
// beats '+', which beats '#' (a filter that has ended with the topic
// beats a '#' that matches no level).
func refMoreSpecific(a, b string) bool {
	al, bl := strings.Split(a, "/"), strings.Split(b, "/")
	rank := func(ls []string, i int) int {
		if i >= len(ls) {
			return 0
		}
		switch ls[i] {
		case "+":
			return 1
		case "#":
			return 2
		}
		return 0
	}
	for i := range max(len(al), len(bl)) {
		if ra, rb := rank(al, i), rank(bl, i); ra != rb {
			return ra < rb
		}
	}
	return false
}

var cornerLevels = []string{"", "a", "b", "a", "b", "$", "$s", "+", "#", "a+", "#b", "é", "x\x00", "\xff", "ab", "+", "#"}

func cornerString(r *rand.Rand, levels []string) string {
	n := 1 + r.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = levels[r.IntN(len(levels))]
	}
	return strings.Join(parts, "/")
}

// TestHubCornerMatchAgreesWithReference compares topics.Match with the
// reference on seeded random filter/topic pairs, including wildcards out
// of place, '$' topics, empty levels and invalid strings.
func TestHubCornerMatchAgreesWithReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	validLevels := []string{"", "a", "b", "$", "$s", "é"}
	matched := 0
	for i := range 20000 {
		filter := cornerString(r, cornerLevels)
		var topic string
		switch i % 3 {
		case 0:
			topic = cornerString(r, validLevels)
		case 1:
			topic = cornerString(r, cornerLevels)
		default:
			// a topic derived from the filter, so that many pairs match
			topic = strings.NewReplacer("+", "a", "#", "b/").Replace(filter)
		}
		want := refMatch(filter, topic)
		if want {
			matched++
		}
		if got := topics.Match(filter, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v, want %v", filter, topic, got, want)
		}
	}
	if matched < 1000 {
		t.Fatalf("only %d pairs matched: the generator is too weak", matched)
	}
	// Lengths at and over MaxTopicLen, with a wildcard at the end.
	for _, n := range []int{topics.MaxTopicLen - 2, topics.MaxTopicLen - 1, topics.MaxTopicLen} {
		base := strings.Repeat("a", n)
		for _, pair := range [][2]string{{base + "/#", base}, {base, base}, {base[:n-1] + "/+", base[:n-1] + "/x"}, {"#", base + "b"}} {
			if got, want := topics.Match(pair[0], pair[1]), refMatch(pair[0], pair[1]); got != want {
				t.Errorf("Match(len %d, len %d) = %v, want %v", len(pair[0]), len(pair[1]), got, want)
			}
		}
	}
}

// TestHubCornerInvalidTopicsAndFiltersReturnTheDocumentedErrors: a
// publish to an invalid topic returns ErrInvalidTopic (and is not counted
// as published), a subscription to an invalid filter ErrInvalidFilter;
// valid strings at exactly MaxTopicLen are accepted.
func TestHubCornerInvalidTopicsAndFiltersReturnTheDocumentedErrors(t *testing.T) {
	hub := newHub(t, &topics.Options{Policy: topics.DropNewest})
	s := newServer(t)
	p := s.join(hub, nil)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	at := strings.Repeat("é", topics.MaxTopicLen/2) // exactly 1024 bytes
	extra := []string{at, at + "a", strings.Repeat("a", topics.MaxTopicLen+1), "/", "//", "$", "a/\xc3", "+a", "a#"}
	published := int64(0)
	for i := range 600 {
		var str string
		if i < len(extra) {
			str = extra[i]
		} else {
			str = cornerString(r, cornerLevels)
		}
		err := hub.Publish(ctx, str, text("x"))
		if refValidTopic(str) {
			published++
			if err != nil {
				t.Fatalf("Publish(%q) = %v, want nil", str, err)
			}
		} else if !errors.Is(err, topics.ErrInvalidTopic) {
			t.Fatalf("Publish(%q) = %v, want ErrInvalidTopic", str, err)
		}
		if err := p.m.Publish(ctx, str, text("x")); refValidTopic(str) != (err == nil) || (err != nil && !errors.Is(err, topics.ErrInvalidTopic)) {
			t.Fatalf("Member.Publish(%q) = %v", str, err)
		} else if err == nil {
			published++
		}
		err = p.m.Subscribe(str)
		if refValidFilter(str) {
			if err != nil {
				t.Fatalf("Subscribe(%q) = %v, want nil", str, err)
			}
			if err := p.m.Unsubscribe(str); err != nil {
				t.Fatalf("Unsubscribe(%q) = %v", str, err)
			}
		} else if !errors.Is(err, topics.ErrInvalidFilter) {
			t.Fatalf("Subscribe(%q) = %v, want ErrInvalidFilter", str, err)
		}
		if !refValidTopic(str) && hub.Subscribers(str) != 0 {
			t.Fatalf("Subscribers(%q) of an invalid topic = %d", str, hub.Subscribers(str))
		}
	}
	if st := hub.Stats(); st.Published != published {
		t.Errorf("Stats().Published = %d, want %d (invalid topics are not published)", st.Published, published)
	}
	if subs := p.m.Subscriptions(); len(subs) != 0 {
		t.Errorf("subscriptions left: %q", subs)
	}
}

// TestHubCornerTrieCountsAndPicksTheMostSpecificPolicy: several members
// with random overlapping filters, each under a random policy, and a
// client that reads nothing, so that every publish after the first finds
// the member full. Hub.Subscribers must count the members the reference
// matches, each such member must report exactly one drop per publish,
// under the policy of its most specific matching filter, and the
// counters must add up. Some filters are then unsubscribed and the check
// repeated.
func TestHubCornerTrieCountsAndPicksTheMostSpecificPolicy(t *testing.T) {
	var drops dropLog
	hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 1, MaxBytes: 1 << 20}})
	s := newServer(t)
	r := rand.New(rand.NewPCG(5, 6))
	policies := []topics.Policy{topics.DropOldest, topics.DropNewest, topics.KeepLatest, topics.Block(time.Microsecond)}
	levels := []string{"", "a", "b", "$s", "+", "#", "+", "a"}
	type sub struct {
		filter string
		policy topics.Policy
	}
	const nMembers = 4
	ms := make([]*topics.Member, nMembers)
	subs := make([][]sub, nMembers)
	for i := range ms {
		p := s.join(hub, &topics.MemberOptions{Policy: topics.DropNewest}, "hold")
		publishTo := "hold"
		if err := hub.Publish(context.Background(), publishTo, text(fmt.Sprint("hold", i))); err != nil {
			t.Fatal(err)
		}
		p.hold() // that message stays in flight: the member is full
		// hold reached the others too; let them be.
		ms[i] = p.m
		for range 6 {
			f := cornerString(r, levels)
			if !refValidFilter(f) || slices.ContainsFunc(subs[i], func(s sub) bool { return s.filter == f }) {
				continue
			}
			pol := policies[r.IntN(len(policies))]
			if err := p.m.SubscribeWith(f, pol); err != nil {
				t.Fatal(err)
			}
			subs[i] = append(subs[i], sub{f, pol})
		}
	}
	pairs := 0
	check := func(round int) {
		for range 150 {
			topic := cornerString(r, []string{"", "a", "b", "$s", "c"})
			if !refValidTopic(topic) {
				continue
			}
			want := map[*topics.Member]string{}
			for i, ss := range subs {
				best := ""
				var bestPol topics.Policy
				for _, s := range ss {
					if refMatch(s.filter, topic) && (best == "" || refMoreSpecific(s.filter, best)) {
						best, bestPol = s.filter, s.policy
					}
				}
				if best != "" {
					want[ms[i]] = bestPol.String() + " of " + best
				}
			}
			pairs += len(want)
			if got := hub.Subscribers(topic); got != len(want) {
				t.Fatalf("round %d: Subscribers(%q) = %d, want %d", round, topic, got, len(want))
			}
			before := drops.total()
			if err := hub.Publish(context.Background(), topic, text("x")); err != nil {
				t.Fatal(err)
			}
			drops.mu.Lock()
			got := slices.Clone(drops.drops[before:])
			drops.mu.Unlock()
			seen := map[*topics.Member]bool{}
			for _, d := range got {
				w, ok := want[d.Member]
				if !ok || seen[d.Member] {
					t.Fatalf("round %d: publish to %q: unexpected drop %v (%v) for a member that should get it %d times", round, topic, d.Reason, d.Policy, len(want))
				}
				seen[d.Member] = true
				if pol, filter, _ := strings.Cut(w, " of "); d.Policy.String() != pol {
					t.Fatalf("round %d: publish to %q applied %v, want %v of the most specific filter %q", round, topic, d.Policy, pol, filter)
				}
			}
			if len(seen) != len(want) {
				t.Fatalf("round %d: publish to %q reached %d full members, want %d", round, topic, len(seen), len(want))
			}
		}
	}
	check(0)
	for i := range subs {
		for j := 0; j < len(subs[i]); {
			if r.IntN(2) == 0 {
				if err := ms[i].Unsubscribe(subs[i][j].filter); err != nil {
					t.Fatal(err)
				}
				subs[i] = slices.Delete(subs[i], j, j+1)
				continue
			}
			j++
		}
	}
	check(1)
	if pairs < 100 {
		t.Fatalf("only %d member/topic pairs matched: the generator is too weak", pairs)
	}
	var sum int64
	for _, m := range ms {
		sum += m.Dropped()
	}
	if st := hub.Stats(); st.Dropped != sum || int64(drops.total()) != sum {
		t.Errorf("Stats().Dropped = %d, OnDrop saw %d, members dropped %d in all", st.Dropped, drops.total(), sum)
	}
}

// ---- a model of one member's queue ----

type qmsg struct {
	name string
	size int // on the wire
	key  string
}

type queueModel struct {
	policy           topics.Policy
	maxBytes, maxMsg int
	inflight         int // bytes of the message being written
	q                []qmsg
	drops            map[topics.DropReason]int
	delivered        int
}

func (m *queueModel) bytes() int {
	b := m.inflight
	for _, e := range m.q {
		b += e.size
	}
	return b
}

func (m *queueModel) fits(size int) bool {
	return 1+len(m.q) < m.maxMsg && m.bytes()+size <= m.maxBytes
}

func (m *queueModel) offer(e qmsg) {
	if e.size > m.maxBytes {
		m.drops[topics.DropTooLarge]++
		return
	}
	keep := m.policy.Name() == "keep-latest"
	if keep {
		if i := slices.IndexFunc(m.q, func(o qmsg) bool { return o.key == e.key }); i >= 0 {
			if m.inflight+e.size > m.maxBytes {
				m.drops[topics.DropRefused]++
				return
			}
			for m.bytes()-m.q[i].size+e.size > m.maxBytes {
				j := 0 // the oldest other message
				if i == 0 {
					j = 1
				}
				m.q = slices.Delete(m.q, j, j+1)
				if j < i {
					i--
				}
				m.drops[topics.DropEvicted]++
			}
			m.q[i] = e
			m.drops[topics.DropReplaced]++
			m.delivered++
			return
		}
	} else {
		e.key = ""
	}
	if !m.fits(e.size) {
		switch m.policy.Name() {
		case "drop-newest":
			m.drops[topics.DropRefused]++
			return
		default: // drop-oldest, keep-latest
			// The message being written cannot be taken back: when it
			// alone leaves no room, the new message is refused.
			if m.maxMsg <= 1 || m.inflight+e.size > m.maxBytes {
				m.drops[topics.DropRefused]++
				return
			}
			for !m.fits(e.size) {
				m.q = m.q[1:]
				m.drops[topics.DropEvicted]++
			}
		}
	}
	m.q = append(m.q, e)
	m.delivered++
}

// cornerQueueRun publishes msgs to a member held in the middle of its
// first message and compares what it holds, drops and finally receives
// with the model.
func cornerQueueRun(t *testing.T, policy topics.Policy, maxMsg, maxBytes int, msgs []qmsg) {
	t.Helper()
	var drops dropLog
	hub := newHub(t, &topics.Options{OnDrop: drops.add})
	s := newServer(t)
	p := s.join(hub, &topics.MemberOptions{Policy: policy, Limits: topics.Limits{MaxMessages: maxMsg, MaxBytes: maxBytes}}, "t/#")
	first := "h0:" + strings.Repeat("h", 20)
	publish(t, hub, "t/h", text(first))
	p.hold()
	model := &queueModel{policy: policy, maxBytes: maxBytes, maxMsg: maxMsg, inflight: wire(len(first)), drops: map[topics.DropReason]int{}, delivered: 1}
	for _, e := range msgs {
		payload := e.name + ":" + strings.Repeat("p", e.size-wire(0)-len(e.name)-1)
		if wire(len(payload)) != e.size {
			t.Fatalf("size %d cannot be made", e.size)
		}
		topic := "t/" + e.key
		var opts []topics.PublishOption
		key := topic
		if strings.HasPrefix(e.key, "k") {
			topic = "t/x" // the key, not the topic, coalesces
			opts = append(opts, topics.Key(e.key))
			key = e.key
		}
		publish(t, hub, topic, text(payload), opts...)
		model.offer(qmsg{name: e.name, size: e.size, key: key})
		if b, n := p.m.Buffered(); b != model.bytes() || n != 1+len(model.q) {
			t.Fatalf("after %s (%d bytes): Buffered() = %d bytes, %d msgs; model %d, %d (queue %v)", e.name, e.size, b, n, model.bytes(), 1+len(model.q), model.q)
		}
	}
	want := []string{"h0"}
	for _, e := range model.q {
		want = append(want, e.name)
	}
	var got []string
	for range want {
		name, _, _ := strings.Cut(p.text(), ":")
		got = append(got, name)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("client got %q, model %q", got, want)
	}
	p.silent()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.m.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if b, n := p.m.Buffered(); b != 0 || n != 0 {
		t.Fatalf("after Drain: Buffered() = %d, %d", b, n)
	}
	total := 0
	for r, n := range model.drops {
		total += n
		if got := drops.count(r); got != n {
			t.Errorf("%v drops: %d, model %d", r, got, n)
		}
	}
	st := hub.Stats()
	if int(p.m.Dropped()) != total || int(st.Dropped) != total || drops.total() != total {
		t.Errorf("Dropped() = %d, Stats().Dropped = %d, OnDrop %d; model %d", p.m.Dropped(), st.Dropped, drops.total(), total)
	}
	if int(st.Delivered) != model.delivered || int(st.Published) != 1+len(msgs) {
		t.Errorf("Stats() = %+v, model delivered %d of %d", st, model.delivered, 1+len(msgs))
	}
	// Every publish is received or counted once as dropped.
	if len(got)+total != 1+len(msgs) {
		t.Errorf("received %d + dropped %d != published %d", len(got), total, 1+len(msgs))
	}
}

// TestHubCornerQueueMatchesTheModel drives DropOldest, DropNewest and
// KeepLatest (with keys from the Key option and from topics) over random
// limits and sizes, including messages that land exactly on MaxBytes and
// MaxMessages, in cases where the message being written alone never
// leaves a new message without room.
func TestHubCornerQueueMatchesTheModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	policies := []topics.Policy{topics.DropOldest, topics.DropNewest, topics.KeepLatest}
	keys := []string{"a", "b", "k1", "k2", "k1"}
	for run := range 30 {
		policy := policies[run%len(policies)]
		maxMsg := 2 + r.IntN(5)
		const maxSize = 40
		maxBytes := wire(23) + maxSize + r.IntN(4*maxSize) // room for one more beside the one in flight
		var msgs []qmsg
		for i := range 14 {
			msgs = append(msgs, qmsg{name: fmt.Sprint("m", i), size: 6 + r.IntN(maxSize-5), key: keys[r.IntN(len(keys))]})
		}
		t.Run(fmt.Sprintf("%d-%v-%d-%d", run, policy, maxMsg, maxBytes), func(t *testing.T) {
			cornerQueueRun(t, policy, maxMsg, maxBytes, msgs)
		})
	}
}

// TestHubCornerQueueExactLimits: table cases at and one byte over
// MaxBytes, and at MaxMessages.
func TestHubCornerQueueExactLimits(t *testing.T) {
	held := wire(23)
	for _, tc := range []struct {
		name     string
		policy   topics.Policy
		maxMsg   int
		maxBytes int
		msgs     []qmsg
	}{
		{"bytes-exact-newest", topics.DropNewest, 10, held + 30, []qmsg{{"a", 10, "a"}, {"b", 20, "a"}, {"c", 6, "a"}}},
		{"bytes-over-newest", topics.DropNewest, 10, held + 30, []qmsg{{"a", 10, "a"}, {"b", 21, "a"}, {"c", 20, "a"}}},
		{"bytes-exact-oldest", topics.DropOldest, 10, held + 30, []qmsg{{"a", 10, "a"}, {"b", 20, "a"}, {"c", 10, "a"}}},
		{"bytes-over-oldest", topics.DropOldest, 10, held + 30, []qmsg{{"a", 10, "a"}, {"b", 20, "a"}, {"c", 11, "a"}}},
		{"msgs-exact-oldest", topics.DropOldest, 3, 1 << 20, []qmsg{{"a", 10, "a"}, {"b", 10, "a"}, {"c", 10, "a"}, {"d", 10, "a"}}},
		{"msgs-exact-newest", topics.DropNewest, 3, 1 << 20, []qmsg{{"a", 10, "a"}, {"b", 10, "a"}, {"c", 10, "a"}}},
		{"too-large-exact", topics.DropNewest, 10, 40, []qmsg{{"a", 40, "a"}, {"b", 41, "a"}}},
		{"keep-replace-in-place", topics.KeepLatest, 3, 1 << 20, []qmsg{{"a", 10, "k1"}, {"b", 10, "k2"}, {"c", 10, "k1"}, {"d", 10, "k3"}, {"e", 10, "k2"}}},
		{"keep-grow-evicts-others", topics.KeepLatest, 10, held + 40, []qmsg{{"a", 10, "k1"}, {"b", 10, "k2"}, {"c", 10, "k3"}, {"d", 30, "k2"}}},
		{"keep-refused-keeps-old", topics.KeepLatest, 10, held + 40, []qmsg{{"a", 10, "k1"}, {"b", 41, "k1"}, {"c", 10, "k2"}}},
		{"keep-at-max-messages", topics.KeepLatest, 3, 1 << 20, []qmsg{{"a", 10, "k1"}, {"b", 10, "k2"}, {"c", 30, "k1"}, {"d", 10, "k3"}, {"e", 10, "k1"}}},
		{"keep-grow-exact", topics.KeepLatest, 10, held + 40, []qmsg{{"a", 10, "k1"}, {"b", 10, "k2"}, {"c", 10, "k3"}, {"d", 20, "k2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cornerQueueRun(t, tc.policy, tc.maxMsg, tc.maxBytes, tc.msgs)
		})
	}
}

// TestHubCornerInFlightAloneRefusesWithoutEvicting: "Messages in a batch
// ... still count against the member's limits until the socket took them,
// and no policy can take them back: when only they stand in the way,
// DropOldest and KeepLatest refuse the new message instead of evicting
// (DropRefused)." A message that cannot fit beside the one being written,
// however empty the queue, must be refused without first evicting the
// queued messages for nothing.
func TestHubCornerInFlightAloneRefusesWithoutEvicting(t *testing.T) {
	held := wire(23)
	for _, policy := range []topics.Policy{topics.DropOldest, topics.KeepLatest} {
		t.Run(policy.String(), func(t *testing.T) {
			// 25 + 10 + 10 held; "c" (41) does not fit beside "h0" alone.
			cornerQueueRun(t, policy, 10, held+40, []qmsg{{"a", 10, "a"}, {"b", 10, "b"}, {"c", 41, "c"}})
		})
	}
}

// ---- delivery over loopback WebSockets ----

func cornerExpect(t *testing.T, c *gorilla.Conn, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := next(t, c); got != w {
			t.Fatalf("client got %q, want %q", got, w)
		}
	}
}

// TestHubCornerLoopbackDeliveryOnceToSelfUnsubscribe: over real
// WebSockets, a member whose filters overlap gets each publish once; its
// own publishes come back only with ToSelf; Unsubscribe stops delivery at
// once while the other filters go on; a member publishing to an invalid
// topic gets ErrInvalidTopic and nobody gets anything.
func TestHubCornerLoopbackDeliveryOnceToSelfUnsubscribe(t *testing.T) {
	var drops dropLog
	hub := newHub(t, &topics.Options{OnDrop: drops.add})
	l := serveLoopback(t, hub, &topics.MemberOptions{Policy: topics.DropNewest}, "mark")
	a, am := l.dial(t)
	b, bm := l.dial(t)
	for _, f := range []string{"r/x", "r/+", "+/x", "r/#", "#"} {
		if err := am.Subscribe(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := bm.Subscribe("r/x"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n := hub.Subscribers("r/x"); n != 2 {
		t.Fatalf("Subscribers(r/x) = %d, want 2", n)
	}
	publish(t, hub, "r/x", messages.Text("1"))
	publish(t, hub, "mark", messages.Text("m1"))
	cornerExpect(t, a, "1", "m1")
	cornerExpect(t, b, "1", "m1")

	// Own publishes: not back without ToSelf, once with it.
	if err := am.Publish(ctx, "r/x", messages.Text("2")); err != nil {
		t.Fatal(err)
	}
	if err := am.Publish(ctx, "r/x", messages.Text("3"), topics.ToSelf()); err != nil {
		t.Fatal(err)
	}
	if err := bm.Publish(ctx, "r/x", messages.Text("4")); err != nil {
		t.Fatal(err)
	}
	publish(t, hub, "mark", messages.Text("m2"))
	cornerExpect(t, a, "3", "4", "m2")
	cornerExpect(t, b, "2", "3", "m2")

	// Unsubscribing some overlapping filters changes nothing; all of them
	// stops delivery at once.
	for _, f := range []string{"r/x", "r/+", "+/x", "r/#"} {
		if err := am.Unsubscribe(f); err != nil {
			t.Fatal(err)
		}
		publish(t, hub, "r/x", messages.Text("u-"+f))
		cornerExpect(t, a, "u-"+f)
	}
	if err := am.Unsubscribe("#"); err != nil {
		t.Fatal(err)
	}
	publish(t, hub, "r/x", messages.Text("gone"))
	publish(t, hub, "mark", messages.Text("m3"))
	cornerExpect(t, a, "m3")
	cornerExpect(t, b, "u-r/x", "u-r/+", "u-+/x", "u-r/#", "gone", "m3")
	if got := am.Subscriptions(); !slices.Equal(got, []string{"mark"}) {
		t.Errorf("Subscriptions() = %q", got)
	}

	// Invalid topics from a member.
	before := hub.Stats()
	for _, topic := range []string{"", "r/+", "r/#", "r\x00", "\xffr", strings.Repeat("r", topics.MaxTopicLen+1)} {
		if err := bm.Publish(ctx, topic, messages.Text("bad")); !errors.Is(err, topics.ErrInvalidTopic) {
			t.Errorf("Publish(%.20q) = %v, want ErrInvalidTopic", topic, err)
		}
	}
	publish(t, hub, "mark", messages.Text("m4"))
	cornerExpect(t, a, "m4")
	cornerExpect(t, b, "m4")
	if st := hub.Stats(); st.Published != before.Published+1 {
		t.Errorf("Published went from %d to %d for one valid publish", before.Published, st.Published)
	}
	if drops.total() != 0 {
		t.Errorf("drops: %+v", drops.drops)
	}
}

// TestHubCornerLoopbackDrainAndStats: Drain returns once everything was
// written (Buffered is zero then), and Delivered counts every message the
// clients read.
func TestHubCornerLoopbackDrainAndStats(t *testing.T) {
	hub := newHub(t, &topics.Options{Policy: topics.DropNewest})
	l := serveLoopback(t, hub, nil, "d/#")
	c1, m1 := l.dial(t)
	c2, m2 := l.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	const n = 100
	for i := range n {
		publish(t, hub, fmt.Sprintf("d/%d", i%7), messages.Text(fmt.Sprint(i)))
	}
	// c2 reads concurrently; c1 only after its Drain would be stuck: so
	// drain m2 while c2 reads, then check m1 still holds its messages.
	done := make(chan error, 1)
	go func() { done <- m2.Drain(ctx) }()
	for i := range n {
		cornerExpect(t, c2, fmt.Sprint(i))
	}
	if err := <-done; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if b, k := m2.Buffered(); b != 0 || k != 0 {
		t.Fatalf("after Drain: Buffered() = %d, %d", b, k)
	}
	for i := range n {
		cornerExpect(t, c1, fmt.Sprint(i))
	}
	if err := m1.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if b, k := m1.Buffered(); b != 0 || k != 0 {
		t.Fatalf("after Drain: Buffered() = %d, %d", b, k)
	}
	if st := hub.Stats(); st.Published != n || st.Delivered != 2*n || st.Dropped != 0 || st.Members != 2 {
		t.Errorf("Stats() = %+v", st)
	}
}

// TestHubCornerLoopbackBlockAndDisconnectAtTheLimit: with the message
// being written and MaxMessages-1 queued, the member is exactly full:
// Block waits its timeout and reports DropTimedOut, then delivers once
// the client reads; Disconnect closes with its code only at the first
// message over the limit, and everything adds up.
func TestHubCornerLoopbackBlockAndDisconnectAtTheLimit(t *testing.T) {
	t.Run("Block", func(t *testing.T) {
		var drops dropLog
		hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 3, MaxBytes: 8 << 20}})
		l := serveLoopback(t, hub, &topics.MemberOptions{Policy: topics.Block(30 * time.Millisecond)}, "t")
		c, m := l.dial(t)
		publish(t, hub, "t", big("0"))
		rest := stalled(t, c)
		publish(t, hub, "t", messages.Text("1"))
		publish(t, hub, "t", messages.Text("2")) // exactly full: no wait
		if drops.total() != 0 {
			t.Fatalf("drops at the limit: %+v", drops.drops)
		}
		start := time.Now()
		publish(t, hub, "t", messages.Text("3"))
		if d := time.Since(start); d < 25*time.Millisecond {
			t.Errorf("Block over the limit returned after %v, want its timeout", d)
		}
		if drops.count(topics.DropTimedOut) != 1 || m.Dropped() != 1 {
			t.Fatalf("drops %+v, member dropped %d; want one DropTimedOut", drops.drops, m.Dropped())
		}
		published := make(chan error, 1)
		go func() {
			published <- hub.Publish(context.Background(), "t", messages.Text("4"), topics.Key("ignored"))
		}()
		if got := readText(t, rest); got != "0" {
			t.Fatalf("got %q", got)
		}
		cornerExpect(t, c, "1", "2")
		if err := <-published; err != nil {
			t.Fatal(err)
		}
		if drops.total() == 1 {
			cornerExpect(t, c, "4")
		} else if drops.count(topics.DropTimedOut) != 2 {
			t.Fatalf("drops %+v", drops.drops)
		}
		st := hub.Stats()
		if st.Dropped != m.Dropped() || st.Published != 5 || st.Delivered+st.Dropped != 5 {
			t.Errorf("Stats() = %+v, member dropped %d", st, m.Dropped())
		}
	})
	t.Run("Disconnect", func(t *testing.T) {
		var drops dropLog
		hub := newHub(t, &topics.Options{OnDrop: drops.add, Limits: topics.Limits{MaxMessages: 100, MaxBytes: wire(bigSize) + 2*wire(10)}})
		l := serveLoopback(t, hub, &topics.MemberOptions{Policy: topics.Disconnect(frames.ClosePolicyViolation)}, "t")
		c, m := l.dial(t)
		publish(t, hub, "t", big("0"))
		rest := stalled(t, c)
		publish(t, hub, "t", messages.Text("1:abcdefgh")) // 10 bytes: 12 on the wire
		publish(t, hub, "t", messages.Text("2:abcdefgh")) // exactly MaxBytes
		if drops.total() != 0 {
			t.Fatalf("drops at the limit: %+v", drops.drops)
		}
		publish(t, hub, "t", messages.Text("3")) // one byte over
		publish(t, hub, "t", messages.Text("4"))
		if got := readText(t, rest); got != "0" {
			t.Fatalf("got %q", got)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := c.ReadMessage()
		var ce *gorilla.CloseError
		if !errors.As(err, &ce) || ce.Code != int(frames.ClosePolicyViolation) {
			t.Fatalf("after the message in flight: %q, %v; want close 1008", msg, err)
		}
		eventually(t, "the member left", func() bool { return hub.Stats().Members == 0 })
		if n := drops.count(topics.DropDisconnected); n != 4 || drops.total() != 4 || m.Dropped() != 4 {
			t.Errorf("drops %+v, member dropped %d; want 1-4 DropDisconnected", drops.drops, m.Dropped())
		}
		if st := hub.Stats(); st.Dropped != 4 || st.Published != 5 || st.Delivered != 3 {
			t.Errorf("Stats() = %+v", st)
		}
	})
}
