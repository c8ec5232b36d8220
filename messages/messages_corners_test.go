package messages_test

// Corner tests of package messages against independent references: the
// fragmentation rules of RFC 6455 §5.4 and UTF-8 as unicode/utf8 sees the
// whole message (RFC 6455 §8.1), over random messages cut into random
// frames and random chunks from a fixed seed.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// cornerAlphabet is what random text is made of: ASCII, whole code points of
// every length and the bytes that break UTF-8 (stray continuations,
// overlong leads, surrogates, code points past U+10FFFF, truncations).
var cornerAlphabet = []string{
	"a", "Z", "\x00", "\x7f", "é", "€", "\U0010FFFF", "𝄞", "\ud7ff", "\ue000",
	"\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf",
	"\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
	"\xf5\x80\x80\x80", "\xff", "\xe2\x82", "\xf0\x9d\x84", "\xc3",
}

func cornerText(r *rand.Rand, maxParts int, validOnly bool) []byte {
	var b []byte
	for range r.IntN(maxParts + 1) {
		s := cornerAlphabet[r.IntN(len(cornerAlphabet))]
		if validOnly && !utf8.ValidString(s) {
			continue
		}
		b = append(b, s...)
	}
	return b
}

// cornerHopeful reports whether bytes appended to p can make it valid
// UTF-8: p is valid up to at most three final bytes that are a proper
// prefix of some encoded code point. Proper prefixes are found by trying
// every second byte and 0x80 for the rest.
func cornerHopeful(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	for k := 1; k <= 3 && k <= len(p); k++ {
		head, tail := p[:len(p)-k], p[len(p)-k:]
		if !utf8.Valid(head) || utf8.FullRune(tail) {
			continue
		}
		for missing := 1; missing+k <= 4; missing++ {
			for second := 0x80; second <= 0xBF; second++ {
				c := append(bytes.Clone(tail), make([]byte, missing)...)
				for i := k; i < len(c); i++ {
					c[i] = 0x80
				}
				if k == 1 {
					c[1] = byte(second)
				}
				if r, size := utf8.DecodeRune(c); r != utf8.RuneError && size == len(c) {
					return true
				}
				if k > 1 {
					break
				}
			}
		}
	}
	return false
}

// cornerFrame is one frame of a planned message.
type cornerFrame struct {
	op      frames.Opcode
	fin     bool
	payload []byte
}

// cornerSplit cuts p into frames at random, the first with op.
func cornerSplit(r *rand.Rand, op frames.Opcode, p []byte) []cornerFrame {
	var fs []cornerFrame
	for {
		n := len(p)
		if n > 0 && r.IntN(3) != 0 {
			n = r.IntN(n + 1) // empty fragments included
		}
		fs = append(fs, cornerFrame{op: op, fin: n == len(p), payload: p[:n]})
		if n == len(p) {
			return fs
		}
		p = p[n:]
		op = frames.OpContinuation
	}
}

// Random messages, text and binary, valid and not, cut into random
// fragments and their payloads into random chunks, through Begin, Chunk and
// End with a limit near the message's size: every message is refused with
// ErrTooLarge by the Begin of the frame that crosses the limit (exactly at
// the limit passes), a text message with ErrInvalidUTF8 by the Chunk with
// which it stops being the start of valid UTF-8 or else by the End of its
// last frame when it ends inside a code point, and every other message comes
// out whole. Kind, Active and Size say where the Assembler is throughout,
// and Push agrees on every outcome.
func TestCornerAssemblerRandomFragmentations(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 4))
	for iter := range 4000 {
		kind := messages.KindText
		if r.IntN(4) == 0 {
			kind = messages.KindBinary
		}
		payload := cornerText(r, 12, r.IntN(2) == 0)
		var limit int64
		if r.IntN(2) == 0 {
			limit = int64(len(payload)) + int64(r.IntN(3)) - 1 // one under, at, one over
			if limit == 0 {
				limit = 1 // 0 means no limit
			}
		}
		fs := cornerSplit(r, kind.Opcode(), payload)
		name := fmt.Sprintf("#%d %v % x limit %d in %d frames", iter, kind, payload, limit, len(fs))

		a := messages.Assembler{Limit: limit}
		var pa messages.Assembler
		pa.Limit = limit
		// Leftovers of a previous message must not matter.
		if _, _, err := pa.Push(frames.Binary([]byte("before"))); err != nil && limit >= 6 {
			t.Fatalf("%s: Push of an earlier message: %v", name, err)
		}
		pa.Reset()

		var got error
		var size int64
		var where string
	frames:
		for i, f := range fs {
			if err := a.Begin(f.op, f.fin, int64(len(f.payload))); err != nil {
				got, where = err, fmt.Sprintf("Begin of frame %d", i)
				break
			}
			if !a.Active() || a.Kind() != kind {
				t.Fatalf("%s: after Begin of frame %d: Active %v Kind %v", name, i, a.Active(), a.Kind())
			}
			for p := f.payload; len(p) > 0; {
				n := 1 + r.IntN(len(p))
				if err := a.Chunk(p[:n]); err != nil {
					got, where = err, fmt.Sprintf("Chunk ending at byte %d", size+int64(n))
					break frames
				}
				size += int64(n)
				p = p[n:]
				if a.Size() != size {
					t.Fatalf("%s: Size %d after %d bytes", name, a.Size(), size)
				}
			}
			k, done, err := a.End()
			if err != nil {
				got, where = err, fmt.Sprintf("End of frame %d", i)
				break
			}
			if k != kind || done != f.fin {
				t.Fatalf("%s: End of frame %d = %v, %v", name, i, k, done)
			}
			if a.Active() == done {
				t.Fatalf("%s: Active %v after End of frame %d (fin %v)", name, a.Active(), i, done)
			}
		}

		// The oracle.
		var want error
		var wantWhere string
		var seen int64
	oracle:
		for i, f := range fs {
			if limit > 0 && seen+int64(len(f.payload)) > limit {
				want, wantWhere = messages.ErrTooLarge, fmt.Sprintf("Begin of frame %d", i)
				break
			}
			seen += int64(len(f.payload))
			if kind == messages.KindText && !cornerHopeful(payload[:seen]) {
				want = messages.ErrInvalidUTF8 // in a Chunk of this frame
				// The chunk is random; check the byte position below.
				wantWhere = "Chunk"
				break oracle
			}
			if f.fin && kind == messages.KindText && !utf8.Valid(payload) {
				want, wantWhere = messages.ErrInvalidUTF8, fmt.Sprintf("End of frame %d", i)
			}
		}
		if got != want {
			t.Fatalf("%s: got %v at %s, want %v at %s", name, got, where, want, wantWhere)
		}
		if wantWhere == "Chunk" {
			// The chunk that failed ends at or after the first hopeless
			// byte, and the bytes before that chunk were still hopeful.
			var end int
			if _, err := fmt.Sscanf(where, "Chunk ending at byte %d", &end); err != nil {
				t.Fatalf("%s: failed at %s, want a Chunk", name, where)
			}
			if cornerHopeful(payload[:end]) || !cornerHopeful(payload[:size]) {
				t.Fatalf("%s: ErrInvalidUTF8 from the chunk ending at %d, after %d good bytes", name, end, size)
			}
		} else if want != nil && where != wantWhere {
			t.Fatalf("%s: %v at %s, want at %s", name, got, where, wantWhere)
		}
		if want == nil && a.Size() != int64(len(payload)) {
			t.Fatalf("%s: Size %d after the message, want %d", name, a.Size(), len(payload))
		}

		// Push, with control frames that the Assembler must refuse
		// without effect between the fragments.
		var perr error
		var msg messages.Message
		var done bool
		for _, f := range fs {
			if _, _, err := pa.Push(frames.Ping([]byte("p"))); err == nil {
				t.Fatalf("%s: Push accepted a PING", name)
			} else if _, ok := frames.CodeOf(err); ok {
				t.Fatalf("%s: Push(PING) = %v, a Violation", name, err)
			}
			msg, done, perr = pa.Push(frames.Frame{Op: f.op, Fin: f.fin, Payload: f.payload})
			if perr != nil {
				break
			}
		}
		if perr != want {
			t.Fatalf("%s: Push: %v, want %v", name, perr, want)
		}
		if want == nil && (!done || msg.Kind != kind || !bytes.Equal(msg.Payload, payload)) {
			t.Fatalf("%s: Push gave %v %v % x", name, done, msg.Kind, msg.Payload)
		}
		if want == nil && (pa.Active() || pa.Kind() != 0) {
			t.Fatalf("%s: Push left Active %v Kind %v after the message", name, pa.Active(), pa.Kind())
		}
	}
}

// Every way to cut short tricky texts into frames, through Push: the
// message is accepted exactly when utf8.Valid accepts it whole, wherever
// the cuts fall inside code points (RFC 6455 §5.6, §8.1); SkipUTF8 accepts
// them all, byte for byte.
func TestCornerAssemblerEveryCutOfTrickyText(t *testing.T) {
	texts := []string{
		"a€𝄞b", "\xed\x9f\xbf\xee\x80\x80", "\xf4\x8f\xbf\xbf!", "\xf0\x90\x80\x80",
		"ab\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x9f\xbf", "\xc0\xaf\xc1", "€\xe2\x82",
		"\xf0\x9d\x84", "\x80abc", "é\xc3", "a\xc3(b", "\xf8\x88\x80\x80\x80",
	}
	for _, text := range texts {
		p := []byte(text)
		n := len(p)
		for cuts := range 1 << max(n-1, 0) {
			for _, skip := range []bool{false, true} {
				a := messages.Assembler{SkipUTF8: skip}
				op := frames.OpText
				start := 0
				var err error
				var m messages.Message
				var done bool
				for i := 1; i <= n && err == nil; i++ {
					if i < n && cuts&(1<<(i-1)) == 0 {
						continue
					}
					m, done, err = a.Push(frames.Frame{Op: op, Fin: i == n, Payload: p[start:i]})
					op, start = frames.OpContinuation, i
				}
				valid := skip || utf8.Valid(p)
				switch {
				case valid && (err != nil || !done || m.Kind != messages.KindText || !bytes.Equal(m.Payload, p)):
					t.Fatalf("% x cut %b skip %v: %v, %v, % x; want the whole text", p, cuts, skip, err, done, m.Payload)
				case !valid && err != messages.ErrInvalidUTF8:
					t.Fatalf("% x cut %b: %v, want ErrInvalidUTF8", p, cuts, err)
				}
			}
		}
	}
}

// Limits at the edge, across fragments: a message of exactly Limit bytes
// passes however it is cut, one byte more is refused by the Begin of the
// frame that brings it, even an empty final frame after the limit is
// reached passes, and the refused frame's bytes never reach Push's buffer.
func TestCornerAssemblerLimitAcrossFragments(t *testing.T) {
	for _, limit := range []int64{1, 2, 7, 125, 126} {
		full := bytes.Repeat([]byte("x"), int(limit))
		for cut := int64(0); cut <= limit; cut++ {
			a := messages.Assembler{Limit: limit}
			if _, _, err := a.Push(frames.Frame{Op: frames.OpBinary, Payload: full[:cut]}); err != nil {
				t.Fatalf("limit %d: first %d bytes: %v", limit, cut, err)
			}
			if _, _, err := a.Push(frames.Continuation(full[cut:], false)); err != nil {
				t.Fatalf("limit %d: next %d bytes: %v", limit, limit-cut, err)
			}
			m, done, err := a.Push(frames.Continuation(nil, true))
			if err != nil || !done || int64(len(m.Payload)) != limit {
				t.Fatalf("limit %d cut %d: empty final frame at the limit: %v %v %d", limit, cut, err, done, len(m.Payload))
			}

			b := messages.Assembler{Limit: limit}
			if err := b.Begin(frames.OpText, false, cut); err != nil {
				t.Fatalf("limit %d: Begin %d: %v", limit, cut, err)
			}
			if err := b.Chunk(full[:cut]); err != nil {
				t.Fatal(err)
			}
			if _, _, err := b.End(); err != nil {
				t.Fatal(err)
			}
			if err := b.Begin(frames.OpContinuation, true, limit-cut+1); err != messages.ErrTooLarge {
				t.Fatalf("limit %d cut %d: Begin one over: %v, want ErrTooLarge", limit, cut, err)
			}
			if code, ok := frames.CodeOf(messages.ErrTooLarge); !ok || code != frames.CloseMessageTooBig {
				t.Fatalf("CodeOf(ErrTooLarge) = %v, %v", code, ok)
			}
		}
	}
}

// Fragments of a random message, text split anywhere, reassemble through
// the Assembler, also with a limit of exactly its size; every frame but
// the last lacks FIN, and none is over maxPayload.
func TestCornerFragmentsThroughAssembler(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for range 2000 {
		p := cornerText(r, 20, true)
		m := messages.Text(string(p))
		if r.IntN(3) == 0 {
			m = messages.Binary(p)
		}
		maxPayload := r.IntN(9) - 1
		a := messages.Assembler{Limit: int64(max(len(p), 1))}
		var got messages.Message
		var done bool
		count := 0
		for f := range messages.Fragments(m, maxPayload) {
			if done {
				t.Fatalf("% x max %d: a frame after the final one", p, maxPayload)
			}
			if maxPayload > 0 && len(f.Payload) > maxPayload {
				t.Fatalf("% x max %d: frame of %d bytes", p, maxPayload, len(f.Payload))
			}
			var err error
			got, done, err = a.Push(f)
			if err != nil {
				t.Fatalf("% x max %d: frame %d: %v", p, maxPayload, count, err)
			}
			if done != f.Fin {
				t.Fatalf("% x max %d: frame %d FIN %v but done %v", p, maxPayload, count, f.Fin, done)
			}
			count++
		}
		if !done || got.Kind != m.Kind || !bytes.Equal(got.Payload, p) {
			t.Fatalf("% x max %d: reassembled %v % x", p, maxPayload, got.Kind, got.Payload)
		}
		if maxPayload > 0 && len(p) > 0 && count != (len(p)+maxPayload-1)/maxPayload {
			t.Fatalf("% x max %d: %d frames", p, maxPayload, count)
		}
	}
}

// Message helpers as documented: Text copies its string, Binary keeps its
// slice, Clone owns a copy and keeps nil nil, Text() copies; Kind's
// String and Opcode for every value.
func TestCornerMessageHelpers(t *testing.T) {
	b := []byte("shared")
	bm := messages.Binary(b)
	b[0] = 'S'
	if string(bm.Payload) != "Shared" || bm.Kind != messages.KindBinary {
		t.Errorf("Binary does not keep its slice: %+v", bm)
	}
	c := bm.Clone()
	b[1] = 'H'
	if string(c.Payload) != "Shared" || c.Kind != messages.KindBinary {
		t.Errorf("Clone shares memory with the original: %q", c.Payload)
	}
	s := bm.Text()
	b[2] = 'A'
	if s != "SHared" {
		t.Errorf("Text() shares memory with the payload: %q", s)
	}
	if n := (messages.Message{Kind: messages.KindText}).Clone(); n.Payload != nil || n.Kind != messages.KindText {
		t.Errorf("Clone of a nil payload = %+v", n)
	}
	t1, t2 := messages.Text("same"), messages.Text("same")
	t1.Payload[0] = 'S'
	if string(t2.Payload) != "same" || t1.Kind != messages.KindText {
		t.Errorf("two Text messages of one string share memory")
	}
	for k := range 256 {
		kind := messages.Kind(k)
		want := fmt.Sprintf("kind(%d)", k)
		switch kind {
		case messages.KindText:
			want = "text"
		case messages.KindBinary:
			want = "binary"
		}
		if kind.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, kind.String(), want)
		}
		if kind.Opcode() != frames.Opcode(k) {
			t.Errorf("Kind(%d).Opcode() = %v", k, kind.Opcode())
		}
	}
	if messages.KindText.Opcode() != frames.OpText || messages.KindBinary.Opcode() != frames.OpBinary {
		t.Errorf("kinds are not their opcodes")
	}
	if !errors.Is(messages.ErrInvalidUTF8, messages.ErrInvalidUTF8) {
		t.Errorf("errors.Is")
	}
}
