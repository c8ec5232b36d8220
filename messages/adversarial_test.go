package messages_test

// Adversarial tests of package messages against its doc comments and
// RFC 6455 §5.4, §5.6 and §8.1: boundary limits, calls in unusual
// orders and UTF-8 edge cases at chunk and fragment boundaries.

import (
	"errors"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// Limit: "Begin refuses a frame that would take the message over the
// limit with ErrTooLarge" — exactly at the limit passes, one over fails,
// and lengths near MaxInt64 neither overflow nor slip through.
func TestAdvAssemblerLimitExtremes(t *testing.T) {
	for _, limit := range []int64{1, 125, 126, 65535, 65536, math.MaxInt64} {
		a := messages.Assembler{Limit: limit}
		if err := a.Begin(frames.OpBinary, false, limit); err != nil {
			t.Fatalf("limit %d: first frame of exactly the limit: %v", limit, err)
		}
		a.Reset()
		if limit < math.MaxInt64 {
			if err := a.Begin(frames.OpBinary, true, limit+1); err != messages.ErrTooLarge {
				t.Fatalf("limit %d: one over: %v", limit, err)
			}
			a.Reset()
		}
		// One byte in, then a continuation of the rest and of one more.
		if err := a.Begin(frames.OpText, false, 1); err != nil {
			t.Fatal(err)
		}
		if err := a.Chunk([]byte("a")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.End(); err != nil {
			t.Fatal(err)
		}
		if err := a.Begin(frames.OpContinuation, true, math.MaxInt64); err != messages.ErrTooLarge {
			t.Fatalf("limit %d: continuation of MaxInt64 after 1 byte: %v", limit, err)
		}
		if !a.Active() || a.Size() != 1 {
			// Not promised after a Violation; but an overflow would show here.
			t.Logf("limit %d: after ErrTooLarge active %v size %d", limit, a.Active(), a.Size())
		}
	}
	// No limit: any length is accepted by Begin.
	var a messages.Assembler
	if err := a.Begin(frames.OpBinary, false, math.MaxInt64); err != nil {
		t.Fatalf("no limit, MaxInt64: %v", err)
	}
}

// Opcodes that are not data opcodes given to Begin and Push are the
// caller's mistake (not Violations) and have no effect, even inside a
// message; every reserved data opcode included.
func TestAdvAssemblerEveryNonDataOpcodeMidMessage(t *testing.T) {
	var a messages.Assembler
	if _, done, err := a.Push(frames.Frame{Op: frames.OpText, Payload: []byte("h\xf0\x9f")}); err != nil || done {
		t.Fatal(done, err)
	}
	for v := 0; v < 256; v++ {
		op := frames.Opcode(v)
		if op == frames.OpContinuation || op == frames.OpText || op == frames.OpBinary {
			continue
		}
		err := a.Begin(op, true, 1)
		if err == nil {
			t.Fatalf("Begin(%v): no error", op)
		}
		if _, ok := frames.CodeOf(err); ok {
			t.Fatalf("Begin(%v): %v is a Violation", op, err)
		}
		_, _, err = a.Push(frames.Frame{Op: op, Fin: true, Payload: []byte("zz")})
		if err == nil {
			t.Fatalf("Push(%v): no error", op)
		}
		if _, ok := frames.CodeOf(err); ok {
			t.Fatalf("Push(%v): %v is a Violation", op, err)
		}
	}
	if !a.Active() || a.Kind() != messages.KindText || a.Size() != 3 {
		t.Fatalf("refused calls changed the message: active %v kind %v size %d", a.Active(), a.Kind(), a.Size())
	}
	m, done, err := a.Push(frames.Continuation([]byte("\x98\x80!"), true))
	if err != nil || !done || string(m.Payload) != "h😀!" || m.Kind != messages.KindText {
		t.Fatalf("Push = %v %q %v %v", m.Kind, m.Payload, done, err)
	}
}

// Unusual orders: Begin without End then Reset; End twice; Chunk after
// the message is done; Push while a low-level frame is open.
func TestAdvAssemblerUnusualOrders(t *testing.T) {
	var a messages.Assembler
	// Begin without End, then Reset: a continuation is now out of place.
	if err := a.Begin(frames.OpText, false, 5); err != nil {
		t.Fatal(err)
	}
	if err := a.Chunk([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	// Push in the middle of a low-level frame: refused with no effect.
	if _, _, err := a.Push(frames.Text([]byte("x"))); err == nil {
		t.Fatal("Push inside an open frame: no error")
	} else if _, ok := frames.CodeOf(err); ok {
		t.Fatalf("Push inside an open frame: %v is a Violation", err)
	}
	if a.Size() != 2 {
		t.Fatalf("Size %d after refused Push, want 2", a.Size())
	}
	a.Reset()
	if a.Active() || a.Size() != 0 || a.Kind() != 0 {
		t.Fatalf("after Reset: active %v size %d kind %v", a.Active(), a.Size(), a.Kind())
	}
	if err := a.Begin(frames.OpContinuation, true, 0); err != messages.ErrUnexpectedContinuation {
		t.Fatalf("continuation after Reset: %v", err)
	}
	a.Reset()
	// The UTF-8 state is reset too: a message that left a code point open
	// does not leak into the next one after Reset.
	if _, _, err := a.Push(frames.Frame{Op: frames.OpText, Payload: []byte("\xe2\x82")}); err != nil {
		t.Fatal(err)
	}
	a.Reset()
	if m, done, err := a.Push(frames.Text([]byte("\xac"))); err != messages.ErrInvalidUTF8 {
		t.Fatalf("stray continuation after Reset: %v %v %v", m, done, err)
	}
	a.Reset()
	// A zero-length fragmented message: Active through it, Size 0, done once.
	for i, f := range []frames.Frame{{Op: frames.OpBinary}, frames.Continuation(nil, false), frames.Continuation(nil, true)} {
		m, done, err := a.Push(f)
		if err != nil || done != (i == 2) {
			t.Fatalf("frame %d: %v %v", i, done, err)
		}
		if done && (m.Kind != messages.KindBinary || len(m.Payload) != 0 || a.Active() || a.Size() != 0) {
			t.Fatalf("empty message: %+v active %v size %d", m, a.Active(), a.Size())
		}
		if !done && (!a.Active() || a.Kind() != messages.KindBinary) {
			t.Fatalf("frame %d: active %v kind %v", i, a.Active(), a.Kind())
		}
	}
	// End twice, Chunk after done: caller's errors, no effect on Size.
	if _, _, err := a.End(); err == nil {
		t.Fatal("End without Begin: no error")
	}
	if err := a.Chunk(nil); err == nil {
		t.Fatal("Chunk(nil) without Begin: no error")
	}
	// Size keeps the last message's size until the next message begins.
	if _, done, err := a.Push(frames.Binary([]byte("12345"))); err != nil || !done {
		t.Fatal(done, err)
	}
	if a.Size() != 5 {
		t.Fatalf("Size after done %d, want 5", a.Size())
	}
	if err := a.Begin(frames.OpText, false, 3); err != nil {
		t.Fatal(err)
	}
	if a.Size() != 0 || a.Kind() != messages.KindText {
		t.Fatalf("after Begin of a new message: size %d kind %v", a.Size(), a.Kind())
	}
}

// UTF-8 edge cases fed as chunks of one frame and as separate frames,
// split at every byte: the error comes on the piece where the text
// first cannot be valid (firstBad), and End of the final frame agrees
// with utf8.Valid.
func TestAdvAssemblerUTF8EdgesEverySplit(t *testing.T) {
	edges := []string{
		"\x00", "\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbf", "\xef\xbf\xbe",
		"\xed\x9f\xbf", "\xee\x80\x80", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
		"\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80", // surrogates, a CESU-8 pair
		"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf",
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf", "\xf8\x88\x80\x80\x80", "\xfe", "\xff",
		"\x80", "\xbf", "\xc2", "\xe2\x82", "\xf0\x9f\x98", "\xc2\xc2\x80", "\xe2\x41\x82",
		"\xf0\x9f\x98\x80\x80",
	}
	for _, e := range edges {
		for _, text := range []string{e, "a" + e, e + "z", "ab" + e + "cd"} {
			p := []byte(text)
			bad := firstBad(p)
			valid := utf8.Valid(p)
			for cut := 0; cut <= len(p); cut++ {
				// Two chunks of one frame.
				var a messages.Assembler
				if err := a.Begin(frames.OpText, true, int64(len(p))); err != nil {
					t.Fatal(err)
				}
				failedAt := -1
				if err := a.Chunk(p[:cut]); err != nil {
					failedAt = 0
				} else if err := a.Chunk(p[cut:]); err != nil {
					failedAt = 1
				}
				wantAt := -1
				switch {
				case bad >= 0 && bad < cut:
					wantAt = 0
				case bad >= cut:
					wantAt = 1
				}
				if failedAt != wantAt {
					t.Fatalf("%q cut at %d: Chunk failed on piece %d, want %d", text, cut, failedAt, wantAt)
				}
				if failedAt < 0 {
					_, done, err := a.End()
					if valid != (err == nil && done) {
						t.Fatalf("%q cut at %d: End = %v %v, valid %v", text, cut, done, err, valid)
					}
					if err != nil && err != messages.ErrInvalidUTF8 {
						t.Fatalf("%q: End error %v", text, err)
					}
				}
				// Two frames.
				var b messages.Assembler
				_, _, err1 := b.Push(frames.Frame{Op: frames.OpText, Payload: p[:cut]})
				var err2 error
				if err1 == nil {
					_, _, err2 = b.Push(frames.Continuation(p[cut:], true))
				}
				switch {
				case wantAt == 0 && err1 != messages.ErrInvalidUTF8:
					t.Fatalf("%q frames cut at %d: first frame %v", text, cut, err1)
				case wantAt == 1 && err2 != messages.ErrInvalidUTF8:
					t.Fatalf("%q frames cut at %d: second frame %v", text, cut, err2)
				case wantAt < 0 && valid != (err1 == nil && err2 == nil):
					t.Fatalf("%q frames cut at %d: %v %v, valid %v", text, cut, err1, err2, valid)
				}
				if err2 != nil {
					if code, ok := frames.CodeOf(err2); !ok || code != frames.CloseInvalidPayload {
						t.Fatalf("%q: CodeOf(%v) = %v %v", text, err2, code, ok)
					}
				}
			}
		}
	}
}

// The same text as a binary message, or with SkipUTF8, is never refused.
func TestAdvAssemblerNoUTF8CheckForBinaryOrSkip(t *testing.T) {
	bad := []byte("\xed\xa0\x80\xff\xc0")
	for _, skip := range []bool{false, true} {
		a := messages.Assembler{SkipUTF8: skip}
		op := frames.OpBinary
		if skip {
			op = frames.OpText
		}
		if _, _, err := a.Push(frames.Frame{Op: op, Payload: bad[:2]}); err != nil {
			t.Fatal(err)
		}
		m, done, err := a.Push(frames.Continuation(bad[2:], true))
		if err != nil || !done || string(m.Payload) != string(bad) {
			t.Fatalf("skip %v: %q %v %v", skip, m.Payload, done, err)
		}
	}
}

// Fragments at its boundaries: maxPayload equal to, one below and one
// above the payload; 1-byte frames of a 4-byte rune reassemble.
func TestAdvFragmentsBoundaries(t *testing.T) {
	m := messages.Text("a😀")
	for _, max := range []int{-1, 0, 1, 4, 5, 6, 100} {
		var fs []frames.Frame
		for f := range messages.Fragments(m, max) {
			fs = append(fs, f)
		}
		want := 1
		if max > 0 && max < 5 {
			want = (5 + max - 1) / max
		}
		if len(fs) != want {
			t.Fatalf("max %d: %d frames, want %d", max, len(fs), want)
		}
		var a messages.Assembler
		for i, f := range fs {
			if (i == 0) != (f.Op == frames.OpText) || f.Fin != (i == len(fs)-1) || (max > 0 && len(f.Payload) > max) {
				t.Fatalf("max %d frame %d: %+v", max, i, f)
			}
			got, done, err := a.Push(f)
			if err != nil {
				t.Fatalf("max %d frame %d: %v", max, i, err)
			}
			if done && string(got.Payload) != "a😀" {
				t.Fatalf("max %d: %q", max, got.Payload)
			}
		}
	}
	var n int
	for f := range messages.Fragments(messages.Binary(nil), 3) {
		n++
		if f.Op != frames.OpBinary || !f.Fin || len(f.Payload) != 0 {
			t.Fatalf("empty message: %+v", f)
		}
	}
	if n != 1 {
		t.Fatalf("empty message: %d frames", n)
	}
	if !errors.Is(messages.ErrTooLarge, messages.ErrTooLarge) || messages.KindText.Opcode() != frames.OpText || messages.KindBinary.Opcode() != frames.OpBinary {
		t.Fatal("kinds")
	}
	if s := messages.Kind(0).String(); s != "kind(0)" {
		t.Fatalf("Kind(0) = %q", s)
	}
}
