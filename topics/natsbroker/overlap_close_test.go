package natsbroker_test

// Close racing Subscribe and Unsubscribe of overlapping filters: Close
// returns, no call hangs, the connection is
// left with no subscription of the closed Link (a sibling Link on the
// same Broker keeps exactly its own), and calls after Close fail or do
// nothing.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/topics/natsbroker"
)

func TestCloseRacesSubscribeUnsubscribe(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	nc := rcConnect(t, ns.ClientURL())
	broker := natsbroker.New(nc, &natsbroker.Options{Logger: quiet})
	sibling := rcOpen(t, nc, broker)
	for _, f := range []string{"room/#", "hall", "+/x"} {
		sibling.subscribe(t, f)
	}
	siblingSubs := rcServerSubs(t, ns, nc)
	// Each goroutine owns its filters (the hub calls Subscribe once per
	// filter until Unsubscribe); they overlap across goroutines.
	owned := [][]string{{"#", "room/lobby"}, {"room/#", "+/lobby"}, {"room/+", "room"}, {"+", "a/b/c", "+/+/c"}}
	for round := range 30 {
		a := rcOpen(t, nc, broker)
		var wg sync.WaitGroup
		var calls atomic.Int64
		errs := make(chan error, 64)
		for g, pool := range owned {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				on := map[string]bool{}
				for range 40 {
					f := pool[r.IntN(len(pool))]
					calls.Add(1)
					var err error
					if on[f] {
						err = a.link.Unsubscribe(f)
					} else {
						err = a.link.Subscribe(f)
					}
					if err != nil {
						if !strings.Contains(err.Error(), "link closed") {
							errs <- err
						}
						return
					}
					on[f] = !on[f]
				}
			}()
		}
		// Close after a number of calls that grows with the round.
		waitFor(t, "calls before Close", rcGuard, func() bool { return calls.Load() >= int64(round*4) })
		closed := make(chan error, 1)
		go func() { closed <- a.link.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(rcGuard):
			t.Fatal("Close hangs")
		}
		waited := make(chan struct{})
		go func() { wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(rcGuard):
			t.Fatal("a Subscribe or Unsubscribe hangs")
		}
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
		if got := rcServerSubs(t, ns, nc); !slices.Equal(got, siblingSubs) {
			t.Fatalf("round %d: after Close the connection holds %q, want the sibling's %q", round, got, siblingSubs)
		}
		if err := a.link.Subscribe("late"); err == nil {
			t.Fatalf("round %d: Subscribe after Close succeeded", round)
		}
		if err := a.link.Unsubscribe("room/#"); err != nil {
			t.Fatalf("round %d: Unsubscribe after Close: %v", round, err)
		}
		if got := nc.NumSubscriptions(); got != len(siblingSubs) {
			t.Fatalf("round %d: %d subscriptions on the connection, want %d", round, got, len(siblingSubs))
		}
	}
	// The sibling still gets what it subscribed to, once.
	b := rcStart(t, ns.ClientURL(), nil)
	for _, tp := range []string{"room/lobby", "hall", "a/x", "other"} {
		if err := rcPublish(b.link, tp, tp); err != nil {
			t.Fatal(err)
		}
	}
	rcSync(t, b, sibling, "hall", "end")
	var got []string
	for _, d := range sibling.take() {
		got = append(got, d.payload)
	}
	if want := []string{"room/lobby", "hall", "a/x", "end"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sibling got %q, want %q", got, want)
	}
}
