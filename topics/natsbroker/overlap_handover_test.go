package natsbroker_test

// Wildcard filters coming and going over topics whose exact filters stay
// subscribed, while another node publishes without pause: every message
// must arrive once (the copies through the wildcards are recognised), in
// order, and nothing may be counted lost.

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/topics/natsbroker"
)

// TestOverlappingWildcardsComingAndGoingUnderLoad: node A keeps exact
// filters for three topics and toggles, at random, wildcard filters that
// match some of them ("a/+", "a/#", "#", "+/b", "+/#", "+/+", "a/+/d",
// "+/c/#"), while node B publishes to the three topics in a loop. Every
// message reaches A once and in order, and Losses stay zero.
func TestOverlappingWildcardsComingAndGoingUnderLoad(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	a := rcStart(t, ns.ClientURL(), nil)
	b := rcStart(t, ns.ClientURL(), nil)
	exact := []string{"a/b", "a/c/d", "b/b"}
	for _, f := range exact {
		a.subscribe(t, f)
	}
	wild := []string{"a/+", "a/#", "#", "+/b", "+/#", "+/+", "a/+/d", "+/c/#"}

	// B publishes round after round to the three topics until told to
	// stop, never more than a few thousand messages ahead of A.
	stop := make(chan struct{})
	var rounds atomic.Int64
	finished := make(chan int, 1)
	go func() {
		i := 0
		defer func() { finished <- i }()
		for ; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			for _, tp := range exact {
				if err := rcPublish(b.link, tp, tp+" "+strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
			}
			rounds.Store(int64(i + 1))
			for deadline := time.Now().Add(rcGuard); ; {
				a.mu.Lock()
				behind := (i+1)*len(exact) - len(a.got)
				a.mu.Unlock()
				if behind < 3000 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("A stays %d messages behind", behind)
					return
				}
				time.Sleep(time.Millisecond) // a poll: A catching up
			}
		}
	}()

	stopPublisher := sync.OnceValue(func() int {
		close(stop)
		return <-finished
	})
	defer stopPublisher()

	r := rand.New(rand.NewPCG(3, 4))
	active := map[string]bool{}
	// At least 300 toggles, and on until 3000 rounds went out during them.
	toggles := 0
	for deadline := time.Now().Add(rcGuard); toggles < 300 || rounds.Load() < 3000; toggles++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d toggles, %d rounds published", toggles, rounds.Load())
		}
		f := wild[r.IntN(len(wild))]
		if active[f] {
			a.unsubscribe(t, f)
		} else {
			a.subscribe(t, f)
		}
		active[f] = !active[f]
	}
	perTopic := stopPublisher()
	rcSync(t, b, a, "a/b", "end")
	got := a.take()
	next := map[string]int{}
	for _, d := range got {
		if d.payload == "end" {
			continue
		}
		tp, n, _ := strings.Cut(d.payload, " ")
		i, _ := strconv.Atoi(n)
		if tp != d.topic {
			t.Fatalf("%q delivered on %s", d.payload, d.topic)
		}
		if i != next[tp] {
			t.Fatalf("%s: message %d after %d (a gap or a duplicate)", tp, i, next[tp]-1)
		}
		next[tp]++
		if d.lost != 0 {
			t.Errorf("%q delivered with Lost %d", d.payload, d.lost)
		}
	}
	for _, tp := range exact {
		if next[tp] != perTopic {
			t.Errorf("%s: %d messages", tp, next[tp])
		}
	}
	if l := a.broker.Losses(); l != (natsbroker.Losses{}) {
		t.Errorf("losses %+v", l)
	}
	t.Logf("%d toggles, %v messages", toggles, next)

}
