package group

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/colibri-ws/colibri/frames"
)

// stuck is a member whose handler never returns: it is told to shut down
// and to close, and gives its place back only when the test says so.
type stuck struct {
	shutdowns, closes atomic.Int32
}

func (s *stuck) Shutdown(frames.CloseCode) { s.shutdowns.Add(1) }
func (s *stuck) CloseNow()                 { s.closes.Add(1) }

func TestShutdownLeavesNoGoroutineBehindWhenIncomplete(t *testing.T) {
	before := goleak.IgnoreCurrent()
	var g Group
	ctx, err := g.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := &stuck{}
	Join(ctx, m)

	deadline, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	report, err := g.Shutdown(deadline)
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Shutdown = %v, want ErrIncomplete", err)
	}
	if report != (Report{Forced: 1}) {
		t.Fatalf("report %+v, want one forced", report)
	}
	if m.shutdowns.Load() != 1 || m.closes.Load() != 1 {
		t.Fatalf("member told %d shutdowns and %d closes, want one each", m.shutdowns.Load(), m.closes.Load())
	}
	// Shutdown returned: nothing of the Group may still be waiting for
	// the stuck handler, which has not returned yet.
	if err := goleak.Find(before); err != nil {
		t.Fatalf("a goroutine outlived Shutdown: %v", err)
	}
	Quit(ctx, m)
	Leave(ctx)
}

func TestShutdownWaitsForTheLastPlace(t *testing.T) {
	defer goleak.VerifyNone(t)
	var g Group
	ctx, err := g.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		Leave(ctx)
		Leave(ctx) // a second Leave changes nothing
	}()
	report, err := g.Shutdown(context.Background())
	if err != nil || report != (Report{Graceful: 1}) {
		t.Fatalf("Shutdown = %+v, %v; want one graceful", report, err)
	}
	if g.Len() != 0 {
		t.Fatalf("Len = %d after Shutdown", g.Len())
	}
	// A second Shutdown of an empty Group returns at once.
	report, err = g.Shutdown(context.Background())
	if err != nil || report != (Report{}) {
		t.Fatalf("second Shutdown = %+v, %v", report, err)
	}
	if _, err := g.Enter(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enter after Shutdown = %v, want ErrClosed", err)
	}
}

func TestShutdownOfAnEmptyGroupReturnsAtOnce(t *testing.T) {
	var g Group
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // even with its context over, nothing is forced
	report, err := g.Shutdown(ctx)
	if err != nil || report != (Report{}) {
		t.Fatalf("Shutdown = %+v, %v", report, err)
	}
}
