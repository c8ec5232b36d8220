package natsbroker_test

// Random sequences of Subscribe and Unsubscribe of overlapping filters on
// one node, against a real NATS server: after each step the server holds
// exactly the subscriptions of the node's filters, and a message published by another node to
// each topic of a pool arrives exactly once if a filter matches it and
// not at all otherwise.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
)

const rcMarkerTopic = "zz/marker"

// rcWireMatch reports whether a node with filter is handed topic:
// topics.Match (NATS also carries a topic whose first level starts with
// '$' to a filter whose first level is a wildcard, and the node drops it).
func rcWireMatch(f, tp string) bool {
	return topics.Match(f, tp)
}

// rcRandomRun runs steps random toggles of the filters in pool and checks
// each step; topicPool is what the other node publishes to.
func rcRandomRun(t *testing.T, seed uint64, steps int, pool, topicPool []string) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	a := rcStart(t, ns.ClientURL(), nil)
	b := rcStart(t, ns.ClientURL(), nil)
	r := rand.New(rand.NewPCG(seed, 7))

	active := map[string]bool{}
	a.subscribe(t, rcMarkerTopic)
	check := func(step int, what string) {
		t.Helper()
		filters := []string{rcMarkerTopic}
		for f, on := range active {
			if on {
				filters = append(filters, f)
			}
		}
		slices.Sort(filters)
		want := rcHeld(natsbroker.DefaultPrefix, filters)
		if got := rcServerSubs(t, ns, a.nc); !slices.Equal(got, want) {
			t.Fatalf("step %d (%s), filters %q: the server holds %q, want %q", step, what, filters, got, want)
		}
		if got := a.nc.NumSubscriptions(); got != len(want) {
			t.Fatalf("step %d (%s): the connection has %d subscriptions, want %d", step, what, got, len(want))
		}
		for _, tp := range topicPool {
			if err := rcPublish(b.link, tp, fmt.Sprintf("%d|%s", step, tp)); err != nil {
				t.Fatal(err)
			}
		}
		rcSync(t, b, a, rcMarkerTopic, fmt.Sprintf("%d|marker", step))
		count := map[string]int{}
		for _, d := range a.take() {
			if d.payload != fmt.Sprintf("%d|%s", step, d.topic) && d.topic != rcMarkerTopic {
				t.Fatalf("step %d: %q delivered on %q, from another step", step, d.payload, d.topic)
			}
			if d.lost != 0 {
				t.Errorf("step %d: %q delivered with Lost %d", step, d.payload, d.lost)
			}
			count[d.topic]++
		}
		for _, tp := range append(slices.Clone(topicPool), rcMarkerTopic) {
			want := 0
			for _, f := range filters {
				if rcWireMatch(f, tp) {
					want = 1
					break
				}
			}
			if count[tp] != want {
				t.Fatalf("step %d (%s), filters %q: topic %q delivered %d times, want %d", step, what, filters, tp, count[tp], want)
			}
		}
	}
	check(0, "start")
	for step := 1; step <= steps; step++ {
		f := pool[r.IntN(len(pool))]
		var what string
		if active[f] {
			what = "unsubscribe " + f
			a.unsubscribe(t, f)
		} else {
			what = "subscribe " + f
			a.subscribe(t, f)
		}
		active[f] = !active[f]
		check(step, what)
	}
	// Everything off, one by one, in random order.
	var on []string
	for f, v := range active {
		if v {
			on = append(on, f)
		}
	}
	slices.Sort(on)
	r.Shuffle(len(on), func(i, j int) { on[i], on[j] = on[j], on[i] })
	for i, f := range on {
		a.unsubscribe(t, f)
		active[f] = false
		check(steps+1+i, "unsubscribe "+f)
	}
	a.unsubscribe(t, rcMarkerTopic)
	if got := rcServerSubs(t, ns, a.nc); len(got) != 0 {
		t.Errorf("no filters left, the server holds %q", got)
	}
	if l := a.broker.Losses(); l != (natsbroker.Losses{}) {
		t.Errorf("losses %+v", l)
	}
}

// TestRandomPlainFilters toggles overlapping plain filters.
func TestRandomPlainFilters(t *testing.T) {
	pool := []string{"#", "a/#", "a/+", "+/b", "a/b", "a", "+", "+/+/c", "a/b/c", "+/#",
		"a/+/c", "b", "a/b/#", "+/+", "+/+/+", "a/+/#", "+/b/#"}
	topicPool := []string{"a", "b", "c", "a/b", "a/c", "b/b", "c/b", "a/b/c", "a/c/c",
		"x/y/c", "a/b/d", "b/x/c", "a/a/a/a", "a/b/c/d", "b/b/b"}
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { rcRandomRun(t, seed, 70, pool, topicPool) })
	}
}

// TestRandomEscapedFilters toggles filters whose levels are escaped on
// the wire ('.', '*', '>', '~', a space, empty, non-ASCII): a literal '*'
// or '>' level matches only itself, and '+' or '#' matches escaped levels
// like any other.
func TestRandomEscapedFilters(t *testing.T) {
	pool := []string{"#", "*/#", ">/+", "+/*", "a.b/+", "a.b/c", "*", ">", "~", "~/#",
		"+/ ", " ", "/+", "/", "+/", "é/+", "é/x", "+", "+/+", "a.b/#", "*/*", "+/>", "$x/+", "$x/y"}
	topicPool := []string{"*", ">", "~", " ", "a.b", "a", "*/*", "*/a", ">/x", "a.b/c",
		"a.b/c/d", "~/x", "x/ ", "/", "/x", "x/", "é/x", "a/>", "$x/y", "$x/z", "a/*"}
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { rcRandomRun(t, 100+seed, 70, pool, topicPool) })
	}
}
