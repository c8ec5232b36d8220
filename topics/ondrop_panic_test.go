package topics_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colibri-ws/colibri/topics"
)

// TestCornerDrainAfterAPanickingOnDrop: OnDrop runs in the member's
// clean-up when its connection ends (Conn.AfterFunc, whose panics wsconn
// recovers). docs/topics.md: Drain returns "topics.ErrLeft when the
// connection ends first, once the messages it still held have been
// reported as drops". When OnDrop panics on the first of those drops, the
// panic is logged, the other drops are still reported and Drain returns
// ErrLeft (it waited for its own context, forever with
// context.Background(), when the clean-up stopped at the panic).
func TestCornerDrainAfterAPanickingOnDrop(t *testing.T) {
	var reported atomic.Int64
	hub := newHub(t, &topics.Options{
		Policy: topics.DropNewest,
		Limits: topics.Limits{MaxBytes: 64 << 20, MaxMessages: 64},
		OnDrop: func(d topics.Drop) {
			reported.Add(1)
			panic("OnDrop boom")
		},
	})
	l := serveLoopback(t, hub, nil, "q/#")
	c, m := l.dial(t)
	for range 4 {
		publish(t, hub, "q/1", big("m"))
	}
	_ = stalled(t, c) // the first is in flight; the others stay queued
	if _, n := m.Buffered(); n < 3 {
		t.Fatalf("Buffered() = %d messages, want at least 3 held", n)
	}
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		drained <- m.Drain(ctx)
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close() // the connection ends with 3 or 4 messages held
	select {
	case <-l.ended:
	case <-time.After(4 * time.Second):
		t.Fatal("the connection did not end")
	}
	if err := <-drained; !errors.Is(err, topics.ErrLeft) {
		t.Errorf("Drain = %v, want ErrLeft once the connection ended", err)
	}
	if n := reported.Load(); n < 3 {
		t.Errorf("OnDrop saw %d of the messages the member held, want every one", n)
	}
}
