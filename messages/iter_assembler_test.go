package messages_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// Assembler.Push: "A message is given to Push frame by frame or to Begin,
// Chunk and End, not both". TestGodocPushAfterLowLevelFrames checks the
// direction the doc names (Push continuing a message begun with Begin).
// The other direction, a message begun with Push and continued with
// Begin, Chunk and End, must not make Push hand out a message that lacks
// the low-level frames' bytes while Size counts them: Begin or Push should
// refuse (a caller error), or Push return the whole payload.
func TestPushAfterLowLevelContinuation(t *testing.T) {
	var a messages.Assembler
	if _, done, err := a.Push(frames.Frame{Op: frames.OpText, Payload: []byte("a")}); err != nil || done {
		t.Fatal(done, err)
	}
	if err := a.Begin(frames.OpContinuation, false, 1); err != nil {
		if _, ok := errors.AsType[*frames.Violation](err); ok {
			t.Fatalf("a caller's mistake reported as a Violation: %v", err)
		}
		return // refused: fine
	}
	if err := a.Chunk([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.End(); err != nil {
		t.Fatal(err)
	}
	m, done, err := a.Push(frames.Continuation([]byte("c"), true))
	if err != nil {
		if _, ok := errors.AsType[*frames.Violation](err); ok {
			t.Fatalf("a caller's mistake reported as a Violation: %v", err)
		}
		return // refused: fine
	}
	if !done || !bytes.Equal(m.Payload, []byte("abc")) {
		t.Fatalf("Push returned %q (done %v) for a message of %d bytes; want the whole \"abc\" or a refusal", m.Payload, done, a.Size())
	}
}
