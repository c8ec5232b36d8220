package natsbroker_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/colibri-ws/colibri/messages"
	"github.com/colibri-ws/colibri/topics"
)

// rvNatsfailBig is a 64 KiB message numbered n, so that a client that
// does not read fills its TCP buffers quickly.
func rvNatsfailBig(n int) messages.Message {
	head := fmt.Sprintf("a/%d", n)
	return messages.Text(head + "#" + strings.Repeat("x", 64<<10))
}

func rvNatsfailHead(m string) string {
	h, _, _ := strings.Cut(m, "#")
	return h
}

// docs/topics.md "Backpressure": under the default Disconnect(1013), a
// member that cannot keep up with publishes flooding in from another node
// is closed with 1013, reported as DropDisconnected, and what its client
// got before the CLOSE is an unbroken prefix of what was published (no
// silent hole); another member of the same node, reading, gets everything
// in order: the broker's receiving goroutine is not held up.
func TestRemoteFloodDisconnects1013(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	a := rvNatsfailStart(t, ns.ClientURL(), rvNatsfailOpts{noServe: true})
	b := rvNatsfailStart(t, ns.ClientURL(), rvNatsfailOpts{})
	slow, sm := b.join(t, url.Values{"max": {"8"}}, "a/#")
	fast, _ := b.join(t, url.Values{"max": {"100000"}}, "a/#")
	fr := rvNatsfailRead(fast)
	const total = 300
	for i := 1; i <= total; i++ {
		if err := a.hub.Publish(context.Background(), "a/x", rvNatsfailBig(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the slow member is disconnected", guard, func() bool {
		return b.dropsOf(sm)[topics.DropDisconnected] > 0
	})
	sr := rvNatsfailRead(slow) // now read what came before the CLOSE
	code, text := sr.wait(t)
	if code != 1013 {
		t.Errorf("slow client closed with %d %q, want 1013", code, text)
	}
	got := sr.all()
	for i, m := range got {
		if h := rvNatsfailHead(m); h != fmt.Sprintf("a/%d", i+1) {
			t.Fatalf("slow client's message %d is %s: a hole before the close", i+1, h)
		}
	}
	d := b.dropsOf(sm)
	if len(d) != 1 || d[topics.DropDisconnected] == 0 {
		t.Errorf("slow member's drops %v, want only disconnected", d)
	}
	waitFor(t, "the fast client has everything", guard, func() bool { return len(fr.all()) == total })
	for i, m := range fr.all() {
		if h := rvNatsfailHead(m); h != fmt.Sprintf("a/%d", i+1) {
			t.Fatalf("fast client's message %d is %s", i+1, h)
		}
	}
	t.Logf("slow client got %d messages before 1013, %d drops", len(got), d[topics.DropDisconnected])
}

// docs/topics.md "Backpressure" and "Seeing drops": with DropOldest or
// DropNewest, a member whose client stalls while another node floods its
// topic stays connected, gets what it gets in order, and every message it
// did not get is counted under the policy's reasons (DropOldest refuses
// when only the messages being written stand in the way, "Messages being
// written"): received + dropped is exactly what was published.
func TestRemoteFloodDropPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy  topics.Policy
		reason  topics.DropReason
		reasons []topics.DropReason
	}{
		{topics.DropOldest, topics.DropEvicted, []topics.DropReason{topics.DropEvicted, topics.DropRefused}},
		{topics.DropNewest, topics.DropRefused, []topics.DropReason{topics.DropRefused}},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			ns := startNATS(t, -1)
			defer stopNATS(ns)
			a := rvNatsfailStart(t, ns.ClientURL(), rvNatsfailOpts{noServe: true})
			b := rvNatsfailStart(t, ns.ClientURL(), rvNatsfailOpts{policy: tc.policy})
			ws, m := b.join(t, url.Values{"max": {"8"}}, "a/#")
			const total = 300
			before := b.hub.Stats().Published
			for i := 1; i <= total; i++ {
				if err := a.hub.Publish(context.Background(), "a/x", rvNatsfailBig(i)); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "node b handled every publish", guard, func() bool { return b.hub.Stats().Published-before == total })
			if b.dropsOf(m)[tc.reason] == 0 {
				t.Fatalf("no %v drop while the client stalled: %v", tc.reason, b.dropsOf(m))
			}
			r := rvNatsfailRead(ws)
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			if err := m.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			if err := a.hub.Publish(context.Background(), "a/x", messages.Text("end")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the end marker", guard, func() bool { return r.has("end") })
			got := r.all()
			last := 0
			for _, msg := range got[:len(got)-1] {
				var n int
				fmt.Sscanf(rvNatsfailHead(msg), "a/%d", &n)
				if n <= last {
					t.Fatalf("message %d after %d", n, last)
				}
				last = n
			}
			d := b.dropsOf(m)
			dropped := 0
			for _, r := range tc.reasons {
				dropped += d[r]
				delete(d, r)
			}
			if len(got)-1+dropped != total || len(d) != 0 {
				t.Errorf("received %d, dropped %d, other drops %v; want %d in all, all %v", len(got)-1, dropped, d, total, tc.reasons)
			}
		})
	}
}
