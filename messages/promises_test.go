package messages_test

// Promises of the messages package's documentation that the other tests
// leave open: calls that return a caller's error have no effect, what
// Fragments cuts the Assembler puts back together, and UTF8 fails on
// exactly the piece after which no valid text can follow.

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// TestPromiseAssemblerCallerErrorsHaveNoEffect: "a call that returns one
// has no effect" (Assembler's doc comment).
func TestPromiseAssemblerCallerErrorsHaveNoEffect(t *testing.T) {
	var a messages.Assembler
	if err := a.Begin(frames.OpText, false, 3); err != nil {
		t.Fatal(err)
	}
	if err := a.Chunk([]byte("abcd")); err == nil {
		t.Fatal("Chunk over the declared length: no error")
	} else if _, ok := frames.CodeOf(err); ok {
		t.Fatalf("caller's error %v is a Violation", err)
	}
	if a.Size() != 0 {
		t.Fatalf("the refused Chunk counted: Size %d", a.Size())
	}
	if _, _, err := a.End(); err == nil {
		t.Fatal("End before the payload: no error")
	}
	if err := a.Begin(frames.OpBinary, true, 1); err == nil {
		t.Fatal("Begin inside a frame: no error")
	}
	if !a.Active() || a.Kind() != messages.KindText {
		t.Fatalf("refused calls changed the message: active %v kind %v", a.Active(), a.Kind())
	}
	if err := a.Chunk([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if kind, done, err := a.End(); err != nil || done || kind != messages.KindText {
		t.Fatalf("End = %v %v %v", kind, done, err)
	}
	if err := a.Chunk([]byte("x")); err == nil {
		t.Fatal("Chunk between frames: no error")
	}
	if err := a.Begin(frames.OpContinuation, true, 2); err != nil {
		t.Fatal(err)
	}
	if err := a.Chunk([]byte("de")); err != nil {
		t.Fatal(err)
	}
	if kind, done, err := a.End(); err != nil || !done || kind != messages.KindText || a.Size() != 5 {
		t.Fatalf("End = %v %v %v, Size %d", kind, done, err, a.Size())
	}
	// Push refuses a control frame inside a message without touching it.
	a.Reset()
	if _, _, err := a.Push(frames.Frame{Op: frames.OpText, Payload: []byte("h\xc3")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Push(frames.Ping(nil)); err == nil {
		t.Fatal("Push of a PING: no error")
	}
	m, done, err := a.Push(frames.Continuation([]byte("\xa9!"), true))
	if err != nil || !done || m.Kind != messages.KindText || string(m.Payload) != "hé!" {
		t.Fatalf("Push = %v %q %v %v", m.Kind, m.Payload, done, err)
	}
}

// TestPromiseFragmentsReassemble: Fragments gives frames of at most
// maxPayload bytes that alias the message, opcode first, continuations
// after, FIN last; text may be cut inside a code point, and an Assembler
// whose Limit is the message's size puts it back together.
func TestPromiseFragmentsReassemble(t *testing.T) {
	text := messages.Text("añ€𝄞 mixed ünïcödé text, €€€ 𝄞𝄞")
	bin := messages.Binary([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	for _, m := range []messages.Message{text, bin, messages.Text(""), messages.Binary(nil)} {
		for maxPayload := -1; maxPayload <= len(m.Payload)+1; maxPayload++ {
			a := messages.Assembler{Limit: int64(len(m.Payload))}
			n, off := 0, 0
			var got messages.Message
			var done bool
			for f := range messages.Fragments(m, maxPayload) {
				if done {
					t.Fatalf("frame after FIN")
				}
				if maxPayload > 0 && len(f.Payload) > maxPayload {
					t.Fatalf("frame of %d bytes, max %d", len(f.Payload), maxPayload)
				}
				if want := m.Kind.Opcode(); n > 0 {
					want = frames.OpContinuation
					if f.Op != want {
						t.Fatalf("frame %d: %v", n, f.Op)
					}
				} else if f.Op != want {
					t.Fatalf("first frame: %v", f.Op)
				}
				if len(f.Payload) > 0 && &f.Payload[0] != &m.Payload[off] {
					t.Fatalf("frame %d does not alias the message", n)
				}
				off += len(f.Payload)
				var err error
				if got, done, err = a.Push(f); err != nil {
					t.Fatalf("max %d, frame %d: %v", maxPayload, n, err)
				}
				if done != f.Fin {
					t.Fatalf("Push done %v on a frame with FIN %v", done, f.Fin)
				}
				n++
			}
			if !done || got.Kind != m.Kind || !bytes.Equal(got.Payload, m.Payload) {
				t.Fatalf("max %d: reassembled %v %q", maxPayload, got.Kind, got.Payload)
			}
			if maxPayload <= 0 && n != 1 {
				t.Fatalf("max %d gave %d frames", maxPayload, n)
			}
		}
	}
}

// TestPromiseUTF8FailsOnTheHopelessPiece: Write fails on the piece after
// which the text can no longer be valid, whatever the split, keeps
// failing, and Complete agrees with utf8.Valid.
func TestPromiseUTF8FailsOnTheHopelessPiece(t *testing.T) {
	// Every proper prefix of an encoded scalar value.
	prefixes := map[string]bool{}
	var buf [4]byte
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		n := utf8.EncodeRune(buf[:], r)
		for k := 1; k < n; k++ {
			prefixes[string(buf[:k])] = true
		}
	}
	// hopeful reports whether some bytes appended to p can make it valid.
	hopeful := func(p []byte) bool {
		for k := 0; k <= 3 && k <= len(p); k++ {
			if utf8.Valid(p[:len(p)-k]) && (k == 0 || prefixes[string(p[len(p)-k:])]) {
				return true
			}
		}
		return false
	}
	alphabet := []byte{'a', 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		p := make([]byte, 1+r.IntN(12))
		for i := range p {
			p[i] = alphabet[r.IntN(len(alphabet))]
		}
		var v messages.UTF8
		failed := false
		for i := 0; i < len(p); {
			j := i + 1 + r.IntN(4)
			j = min(j, len(p))
			ok := v.Write(p[i:j])
			want := !failed && hopeful(p[:j])
			if ok != want {
				t.Fatalf("% x split at %d..%d: Write = %v, want %v", p, i, j, ok, want)
			}
			failed = failed || !ok
			i = j
		}
		if v.Complete() != utf8.Valid(p) {
			t.Fatalf("% x: Complete = %v", p, v.Complete())
		}
	}
}
