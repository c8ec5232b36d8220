package topics_test

// Review of the graceful-shutdown rule for topics members with a
// publisher racing the shutdown: every message a member accepted reaches
// its client before the 1001 CLOSE or is reported dropped, once. Helpers
// come from lifecycle_corners_test.go (serveCornerApp, shutdown,
// waitShutdown) and helpers_test.go (newHub, dropLog, eventually).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
)

// TestCornerShutdownRacingPublisherLosesNothingSilently: docs/closing.md
// "Shutdown" (1001 goes out after the message being written, every write
// that returned nil reaches the peer first) and docs/topics.md "Hubs and
// members" (when the connection ends, what was still queued is reported
// as DropLeft; "No policy drops silently"). Four clients read as fast as
// they can while a publisher publishes to "t/<i>" without pause and the
// application shuts down. For each client: what it received is in order,
// followed by a 1001 CLOSE; nothing it received was also reported
// dropped; and what it received plus what was reported dropped for its
// member is every message from 0 up to the last of either, without a
// hole (the messages published after the member left reach no member and
// are not counted, so the run may end early, but not skip). The only
// reasons are DropLeft and, when the publisher outruns a client,
// DropRefused.
func TestCornerShutdownRacingPublisherLosesNothingSilently(t *testing.T) {
	drops := &dropLog{}
	hub := newHub(t, &topics.Options{OnDrop: drops.add, Policy: topics.DropNewest, Limits: topics.Limits{MaxMessages: 4096, MaxBytes: 64 << 20}})
	ca := serveCornerApp(t, hub, nil, nil, "t/+")
	const clients = 4
	type result struct {
		got   []int
		close int
	}
	results := make([]result, clients)
	members := make([]*topics.Member, clients)
	var wg sync.WaitGroup
	for k := range clients {
		c, m := ca.dial(t)
		members[k] = m
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(4 * time.Second))
			for {
				_, b, err := c.ReadMessage()
				if err != nil {
					var ce *gorilla.CloseError
					results[k].close = -1
					if errors.As(err, &ce) {
						results[k].close = ce.Code
					}
					return
				}
				name, _, _ := strings.Cut(string(b), ":")
				i, _ := strconv.Atoi(name)
				results[k].got = append(results[k].got, i)
			}
		}()
	}
	stop := make(chan struct{})
	published := make(chan int, 1)
	go func() {
		pad := strings.Repeat("p", 512)
		i := 0
		defer func() { published <- i }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := hub.Publish(context.Background(), "t/"+strconv.Itoa(i), messages.Text(fmt.Sprintf("%d:%s", i, pad))); err != nil {
				t.Errorf("Publish: %v", err)
				return
			}
			i++
		}
	}()
	time.Sleep(30 * time.Millisecond)
	done := ca.shutdown(3 * time.Second)
	eventually(t, "the members leave", func() bool { return hub.Stats().Members == 0 })
	close(stop)
	n := <-published
	wg.Wait()
	waitShutdown(t, done)

	byMember := map[*topics.Member]map[int]topics.DropReason{}
	drops.mu.Lock()
	for _, d := range drops.drops {
		i, _ := strconv.Atoi(strings.TrimPrefix(d.Topic, "t/"))
		if byMember[d.Member] == nil {
			byMember[d.Member] = map[int]topics.DropReason{}
		}
		if r, ok := byMember[d.Member][i]; ok {
			t.Errorf("message %d dropped twice for one member (%v, %v)", i, r, d.Reason)
		}
		byMember[d.Member][i] = d.Reason
	}
	drops.mu.Unlock()
	for k, r := range results {
		m := members[k]
		if r.close != 1001 {
			t.Errorf("client %d: connection ended with %d, want a 1001 CLOSE", k, r.close)
		}
		seen := map[int]bool{}
		top := -1
		for j, i := range r.got {
			if j > 0 && i <= r.got[j-1] {
				t.Errorf("client %d: %d after %d", k, i, r.got[j-1])
			}
			if reason, ok := byMember[m][i]; ok {
				t.Errorf("client %d: got %d, also reported dropped (%v)", k, i, reason)
			}
			seen[i] = true
			top = max(top, i)
		}
		for i, reason := range byMember[m] {
			seen[i] = true
			top = max(top, i)
			if reason != topics.DropLeft && reason != topics.DropRefused {
				t.Errorf("client %d: %d dropped as %v", k, i, reason)
			}
		}
		holes := 0
		for i := 0; i <= top; i++ {
			if !seen[i] {
				holes++
			}
		}
		if holes > 0 {
			t.Errorf("client %d: %d of the messages up to %d neither arrived nor were reported dropped", k, holes, top)
		}
		if int64(len(byMember[m])) != m.Dropped() {
			t.Errorf("client %d: OnDrop %d, Member.Dropped %d", k, len(byMember[m]), m.Dropped())
		}
		if top >= n {
			t.Errorf("client %d: message %d, but only %d were published", k, top, n)
		}
	}
	t.Logf("published %d; client 0 got %d, dropped %d", n, len(results[0].got), members[0].Dropped())
}
