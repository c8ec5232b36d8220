package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/topics"
	"github.com/colibri-ws/colibri/topics/natsbroker"
)

// docs/scaling.md "What an outage loses" and natsbroker's "Losses": with
// three nodes publishing all the time, the NATS server stops and a new one
// starts on the same port. The nodes reconnect by themselves, clients stay
// connected, each publisher's messages arrive in order and at most once,
// and what a client did not get is counted exactly: for every member, the
// remote messages it received plus its DropLost drops are the messages the
// other nodes numbered (published without ErrNotSent), and a node's
// Losses().Missing equals its member's DropLost.
func TestRestartMidTrafficCountsExactly(t *testing.T) {
	ns := startNATS(t, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	defer func() { stopNATS(ns) }()
	big := topics.Limits{MaxMessages: 1 << 20, MaxBytes: 256 << 20}
	var nodes []*rvNatsfailNode
	var readers []*rvNatsfailReader
	var members []*topics.Member
	for range 3 {
		n := rvNatsfailStart(t, ns.ClientURL(), rvNatsfailOpts{policy: topics.DropNewest, limits: big})
		ws, m := n.join(t, nil, "r/#")
		nodes = append(nodes, n)
		readers = append(readers, rvNatsfailRead(ws))
		members = append(members, m)
	}

	// One publisher per node, each on its own topic r/<node>.
	var numbered, notSent [3]atomic.Int64
	var seq [3]int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pub := func(i int) error {
		seq[i]++
		err := nodes[i].hub.Publish(context.Background(), fmt.Sprintf("r/%d", i), rvNatsfailText(fmt.Sprintf("n%d/%d", i, seq[i])))
		switch {
		case err == nil:
			numbered[i].Add(1)
		case errors.Is(err, natsbroker.ErrNotSent):
			notSent[i].Add(1)
		default:
			return err
		}
		return nil
	}
	for i := range nodes {
		wg.Go(func() {
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if err := pub(i); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	time.Sleep(150 * time.Millisecond) // traffic before the outage
	stopNATS(ns)
	waitFor(t, "every node notices", guard, func() bool {
		for _, n := range nodes {
			if n.nc.IsConnected() {
				return false
			}
		}
		return true
	})
	time.Sleep(150 * time.Millisecond) // traffic during it
	ns = startNATS(t, port)
	waitFor(t, "every node reconnects", guard, func() bool {
		for _, n := range nodes {
			if !n.nc.IsConnected() {
				return false
			}
		}
		return true
	})
	time.Sleep(150 * time.Millisecond) // traffic after it
	close(stop)
	wg.Wait()
	for _, n := range nodes {
		flush(t, n.nc)
	}
	// A last message from each publisher, once every node is back and
	// subscribed, shows every gap before it.
	for i := range nodes {
		if err := pub(i); err != nil {
			t.Fatal(err)
		}
	}
	for j, r := range readers {
		waitFor(t, fmt.Sprintf("client %d has every last message", j), guard, func() bool {
			for i := range nodes {
				if !r.has(fmt.Sprintf("n%d/%d", i, seq[i])) {
					return false
				}
			}
			return true
		})
	}

	for j, r := range readers {
		got := rvNatsfailSeqs(t, fmt.Sprintf("client %d", j), r.all())
		drops := nodes[j].dropsOf(members[j])
		if got[fmt.Sprintf("n%d", j)] != seq[j] {
			t.Errorf("client %d got %d of its own node's %d messages", j, got[fmt.Sprintf("n%d", j)], seq[j])
		}
		remote, want := 0, int64(0)
		for i := range nodes {
			if i != j {
				remote += got[fmt.Sprintf("n%d", i)]
				want += numbered[i].Load()
			}
		}
		l := nodes[j].broker.Losses()
		t.Logf("client %d: %d remote received, %d lost, %d numbered by the others; losses %+v", j, remote, drops[topics.DropLost], want, l)
		if int64(remote+drops[topics.DropLost]) != want {
			t.Errorf("client %d: received %d remote messages and %d were counted lost, the other nodes numbered %d",
				j, remote, drops[topics.DropLost], want)
		}
		if l.Missing != int64(drops[topics.DropLost]) {
			t.Errorf("node %d: Missing %d, its member's DropLost %d", j, l.Missing, drops[topics.DropLost])
		}
		if len(drops) > 1 || (len(drops) == 1 && drops[topics.DropLost] == 0) {
			t.Errorf("client %d: drops other than lost: %v", j, drops)
		}
		if ns := notSent[j].Load(); l.NotSent != ns || l.Discarded != 0 {
			t.Errorf("node %d: losses %+v, %d publishes returned ErrNotSent", j, l, ns)
		}
	}
}
