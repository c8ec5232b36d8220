package natsbroker_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/topics"
)

// docs/topics.md "Hubs and members" and docs/scaling.md "Graceful
// shutdown": one node shuts down gracefully while another keeps
// publishing to its member's topic. The client gets 1001; what it got is
// an unbroken run of the publisher's messages, in order; every message
// queued for the member that did not reach the client is reported as
// DropLeft before the graceful shutdown returns (nothing more is reported
// later), and received + DropLeft is what the hub queued for it.
func TestGracefulShutdownWhileRemoteFloods(t *testing.T) {
	ns := startNATS(t, -1)
	defer stopNATS(ns)
	a := rvNatsfailStart(t, ns.ClientURL(), rvNatsfailOpts{noServe: true})
	b := rvNatsfailStart(t, ns.ClientURL(), rvNatsfailOpts{policy: topics.DropNewest, limits: topics.Limits{MaxMessages: 1 << 20, MaxBytes: 256 << 20}})
	ws, m := b.join(t, nil, "t")
	r := rvNatsfailRead(ws)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := a.hub.Publish(context.Background(), "t", rvNatsfailText(fmt.Sprintf("a/%d", i)+strings.Repeat(".", 512))); err != nil {
				t.Error(err)
				return
			}
			if i%16 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	waitFor(t, "traffic reaches the client", guard, func() bool { return len(r.all()) > 200 })
	if err := b.shutdown(t); err != nil {
		t.Errorf("graceful shutdown: %v", err)
	}
	atShutdown := b.dropsOf(m)
	code, text := r.wait(t)
	time.Sleep(20 * time.Millisecond) // the publisher goes on for a while
	close(stop)
	wg.Wait()
	flush(t, a.nc, b.nc)

	if code != 1001 {
		t.Errorf("client closed with %d %q, want 1001", code, text)
	}
	got := r.all()
	for i, msg := range got {
		head, _, _ := strings.Cut(msg, ".")
		if head != "a/"+strconv.Itoa(i+1) {
			t.Fatalf("message %d is %.20q", i+1, msg)
		}
	}
	final := b.dropsOf(m)
	if fmt.Sprint(final) != fmt.Sprint(atShutdown) {
		t.Errorf("drops when the shutdown returned %v, later %v", atShutdown, final)
	}
	if len(final) > 1 || (len(final) == 1 && final[topics.DropLeft] == 0) {
		t.Errorf("drops other than left: %v", final)
	}
	delivered := b.hub.Stats().Delivered
	t.Logf("received %d, left %d, queued %d", len(got), final[topics.DropLeft], delivered)
	if int64(len(got)+final[topics.DropLeft]) != delivered {
		t.Errorf("received %d + left %d != %d queued for the member", len(got), final[topics.DropLeft], delivered)
	}
}
