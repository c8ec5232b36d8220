package group

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/frames"
)

// r3Member gives its place back when told to shut down (graceful), when
// closed (forced), or only when the test says so (stuck).
type r3Member struct {
	ctx  context.Context
	mode string       // "graceful", "forced", "stuck"
	told atomic.Int32 // Shutdown calls: each Shutdown call tells each member once it read its Len
}

func (m *r3Member) Shutdown(frames.CloseCode) {
	m.told.Add(1)
	if m.mode == "graceful" {
		Quit(m.ctx, m)
		Leave(m.ctx)
	}
}

func (m *r3Member) CloseNow() {
	if m.mode == "forced" {
		Quit(m.ctx, m)
		Leave(m.ctx) // given back before report() runs
	}
}

func r3Enter(t *testing.T, g *Group, mode string) *r3Member {
	t.Helper()
	ctx, err := g.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := &r3Member{ctx: ctx, mode: mode}
	if mode != "handshake" {
		Join(ctx, m)
	}
	return m
}

// TestCornerConcurrentAndLaterShutdownsAgreeOnForced: three calls, the first
// with no deadline, the second with one already passed, the third begun
// after the forcing while a stuck handler and a handshake still hold
// their places. Every call's Graceful+Forced is the Len it began with,
// the places held at the deadline are Forced in each, and the third
// reports only Forced.
func TestCornerConcurrentAndLaterShutdownsAgreeOnForced(t *testing.T) {
	var g Group
	r3Enter(t, &g, "graceful")
	r3Enter(t, &g, "graceful")
	r3Enter(t, &g, "forced")
	stuck := r3Enter(t, &g, "stuck")
	hs := r3Enter(t, &g, "handshake") // accepted upgrade, not yet a member

	type res struct {
		rep Report
		err error
	}
	first := make(chan res, 1)
	go func() {
		rep, err := g.Shutdown(context.Background())
		first <- res{rep, err}
	}()
	// Wait until the first call has told the members (the graceful ones
	// leave at once).
	for deadline := time.Now().Add(2 * time.Second); g.Len() != 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Len = %d, want 3 after the graceful members left", g.Len())
		}
	}
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	rep2, err2 := g.Shutdown(expired) // forces: forced leaves, stuck and hs stay
	if !errors.Is(err2, ErrIncomplete) {
		t.Errorf("second Shutdown err %v, want ErrIncomplete", err2)
	}
	if rep2 != (Report{Forced: 3}) {
		t.Errorf("second Shutdown %+v, want 3 forced", rep2)
	}
	n := g.Len()
	if n != 2 {
		t.Fatalf("Len = %d after the forcing, want 2 (stuck handler, handshake)", n)
	}
	third := make(chan res, 1)
	go func() {
		rep, err := g.Shutdown(context.Background())
		third <- res{rep, err}
	}()
	r3Told(t, stuck, 3)
	// The handshake ends now: joining after the forcing closes it at once.
	Join(hs.ctx, hs)
	Quit(hs.ctx, hs)
	Leave(hs.ctx)
	Quit(stuck.ctx, stuck)
	Leave(stuck.ctx)
	r1 := waitRes(t, first)
	r3 := waitRes(t, third)
	if r1.err != nil || r1.rep != (Report{Graceful: 2, Forced: 3}) {
		t.Errorf("first Shutdown %+v, %v; want 2 graceful, 3 forced", r1.rep, r1.err)
	}
	if r3.err != nil || r3.rep != (Report{Forced: 2}) {
		t.Errorf("third Shutdown %+v, %v; want 2 forced", r3.rep, r3.err)
	}
}

func waitRes[V any](t *testing.T, c <-chan V) V {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(3 * time.Second):
		t.Fatal("a Shutdown call did not return")
		panic("unreachable")
	}
}

// TestCornerManyConcurrentShutdownsSumToTheirStart: many calls at once, some
// with deadlines passing, members leaving at random moments. Every call's
// Graceful+Forced equals the places held when it began (each call here
// begins before any member leaves, so all saw n), and all calls agree on
// Forced.
func TestCornerManyConcurrentShutdownsSumToTheirStart(t *testing.T) {
	const n = 50
	var g Group
	var ms []*r3Member
	for i := range n {
		mode := "graceful"
		if i%3 == 0 {
			mode = "forced"
		}
		m := r3Enter(t, &g, "stuck")
		m.mode = mode + "-later"
		ms = append(ms, m)
	}
	var wg sync.WaitGroup
	reps := make([]Report, 8)
	errs := make([]error, 8)
	start := make(chan struct{})
	for i := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i%2 == 1 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 30*time.Millisecond)
				defer cancel()
			}
			<-start
			reps[i], errs[i] = g.Shutdown(ctx)
		}()
	}
	close(start)
	// Let every call begin before any place is given back.
	r3Told(t, ms[0], int32(len(reps)))
	// Half the graceful members leave before the deadline; the rest, and
	// the forced ones, after it.
	for i, m := range ms {
		if m.mode == "graceful-later" && i%2 == 0 {
			Quit(m.ctx, m)
			Leave(m.ctx)
		}
	}
	time.Sleep(60 * time.Millisecond)
	for i, m := range ms {
		if m.mode != "graceful-later" || i%2 != 0 {
			Quit(m.ctx, m)
			Leave(m.ctx)
		}
	}
	wg.Wait()
	forced := -1
	for i, r := range reps {
		if errs[i] != nil {
			t.Errorf("call %d: %v", i, errs[i])
		}
		if r.Graceful+r.Forced != n {
			// Calls may begin after an early leave only if they were late.
			t.Errorf("call %d: %+v does not sum to %d", i, r, n)
		}
		if forced == -1 {
			forced = r.Forced
		} else if r.Forced != forced {
			t.Errorf("call %d: Forced %d, another call said %d", i, r.Forced, forced)
		}
	}
}

// r3Told waits until m was told to shut down by n calls.
func r3Told(t *testing.T, m *r3Member, n int32) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); m.told.Load() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("member told %d times, want %d", m.told.Load(), n)
		}
	}
}
