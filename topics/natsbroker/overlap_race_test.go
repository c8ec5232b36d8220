package natsbroker_test

// One topic, its exact filter kept throughout, and a wildcard filter
// matching it added and removed hundreds of times while another node
// publishes to the topic without pause: nothing may be lost or delivered
// twice.

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/topics/natsbroker"
)

// rcToggleUnderLoad subscribes A to exact, then toggles wildcard n times
// while B publishes to exact; it returns the numbers of the messages that
// never arrived, how many arrived, and A's losses.
func rcToggleUnderLoad(t *testing.T, exact, wildcard string, n int) (missing []int, arrived int, losses natsbroker.Losses) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	a := rcStart(t, ns.ClientURL(), nil)
	b := rcStart(t, ns.ClientURL(), nil)
	a.subscribe(t, exact)

	stop := make(chan struct{})
	published := make(chan int, 1)
	go func() {
		i := 0
		defer func() { published <- i }()
		for ; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := rcPublish(b.link, exact, strconv.Itoa(i)); err != nil {
				t.Error(err)
				return
			}
			for deadline := time.Now().Add(rcGuard); ; {
				a.mu.Lock()
				behind := i + 1 - len(a.got)
				a.mu.Unlock()
				if behind < 2000 {
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
		return <-published
	})
	defer stopPublisher()

	for range n {
		a.subscribe(t, wildcard)
		a.unsubscribe(t, wildcard)
	}
	total := stopPublisher()
	rcSync(t, b, a, exact, "end")
	seen := make([]int, total)
	for _, d := range a.take() {
		if d.payload == "end" {
			continue
		}
		i, err := strconv.Atoi(d.payload)
		if err != nil || i >= total {
			t.Fatalf("unexpected delivery %q", d.payload)
		}
		seen[i]++
		arrived++
	}
	for i, c := range seen {
		if c > 1 {
			t.Errorf("message %d delivered %d times", i, c)
		}
		if c == 0 {
			missing = append(missing, i)
		}
	}
	return missing, arrived, a.broker.Losses()
}

// TestWildcardComingAndGoingLosesNothing: "room/lobby" stays subscribed
// while "room/+" comes and goes 1000 times under a steady stream to
// room/lobby: room/lobby's own subscription carries every message, and
// the copies through room/+ are recognised.
func TestWildcardComingAndGoingLosesNothing(t *testing.T) {
	missing, arrived, losses := rcToggleUnderLoad(t, "room/lobby", "room/+", 1000)
	if len(missing) > 0 {
		t.Errorf("%d of %d messages to room/lobby never arrived (%v), losses %+v", len(missing), arrived+len(missing), missing[:min(len(missing), 10)], losses)
	}
	if losses != (natsbroker.Losses{}) {
		t.Errorf("losses %+v", losses)
	}
}
