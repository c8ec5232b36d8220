package messages_test

// Checks of what the doc comments of package messages promise.

import (
	"errors"
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// Assembler.Push: a message is given to Push frame by frame or to Begin,
// Chunk and End, not both: Push refuses a continuation of a message begun
// with Begin with a caller error (not a Violation), rather than return
// the previous Push message's bytes with it.
func TestGodocPushAfterLowLevelFrames(t *testing.T) {
	var a messages.Assembler
	if _, _, err := a.Push(frames.Text([]byte("old"))); err != nil {
		t.Fatal(err)
	}
	if err := a.Begin(frames.OpText, false, 2); err != nil {
		t.Fatal(err)
	}
	if err := a.Chunk([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.End(); err != nil {
		t.Fatal(err)
	}
	m, done, err := a.Push(frames.Continuation([]byte("c"), true))
	if err == nil || done {
		t.Fatalf("Push continuing a message begun with Begin: %q, %v, %v; want a caller error", m.Payload, done, err)
	}
	if _, ok := errors.AsType[*frames.Violation](err); ok {
		t.Fatalf("Push gave a Violation (%v) for the caller's mistake", err)
	}
	// The next message, begun with Push, is whole and its own.
	a.Reset()
	if m, done, err := a.Push(frames.Text([]byte("new"))); err != nil || !done || string(m.Payload) != "new" {
		t.Fatalf("after Reset: %q, %v, %v", m.Payload, done, err)
	}
}

// Assembler.Limit: "the largest message payload accepted, in bytes,
// counting all the message's frames"; Begin "returns ErrTooLarge if the
// payload would take the message over Limit, so the excess is never
// buffered". At exactly Limit over several frames, and with zero-length
// frames on top, the message is accepted; one byte more in the last frame
// is refused at Begin, before any payload.
func TestGodocLimitAtTheBoundaryAcrossFrames(t *testing.T) {
	a := messages.Assembler{Limit: 10}
	steps := []struct {
		op  frames.Opcode
		fin bool
		n   int
	}{{frames.OpBinary, false, 4}, {frames.OpContinuation, false, 0}, {frames.OpContinuation, false, 6}, {frames.OpContinuation, true, 0}}
	for _, s := range steps {
		if err := a.Begin(s.op, s.fin, int64(s.n)); err != nil {
			t.Fatalf("Begin(%v, %d) at size %d: %v", s.op, s.n, a.Size(), err)
		}
		if err := a.Chunk(make([]byte, s.n)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.End(); err != nil {
			t.Fatal(err)
		}
	}
	if a.Size() != 10 || a.Active() {
		t.Fatalf("Size %d, Active %v after a message of exactly Limit", a.Size(), a.Active())
	}
	a.Reset()
	if err := a.Begin(frames.OpText, false, 9); err != nil {
		t.Fatal(err)
	}
	if err := a.Chunk([]byte("123456789")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.End(); err != nil {
		t.Fatal(err)
	}
	if err := a.Begin(frames.OpContinuation, true, 2); err != messages.ErrTooLarge {
		t.Fatalf("Begin of 2 bytes at 9 of 10 = %v, want ErrTooLarge", err)
	}
	if code, ok := frames.CodeOf(messages.ErrTooLarge); !ok || code != frames.CloseMessageTooBig {
		t.Errorf("CodeOf(ErrTooLarge) = %v, %v", code, ok)
	}
}
