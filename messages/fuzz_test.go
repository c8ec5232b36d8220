package messages_test

import (
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/colibri-ws/colibri/frames"
	"github.com/colibri-ws/colibri/messages"
)

// cutAt turns the bytes of shape into cut points of a payload of n bytes:
// each byte is the length of the next piece, modulo 17 so that pieces land
// inside code points often. Whatever shape does not cover goes in a last
// piece. Every piece may be empty.
func cutAt(n int, shape []byte) []int {
	cuts := []int{0}
	at := 0
	for _, s := range shape {
		at = min(at+int(s%17), n)
		cuts = append(cuts, at)
	}
	return append(cuts, n)
}

// FuzzUTF8 checks UTF8 against the standard library for arbitrary bytes
// written in arbitrary pieces: after each piece Write must report exactly
// whether the bytes so far can still begin valid UTF-8, and Complete at the
// end must agree with utf8.Valid.
func FuzzUTF8(f *testing.F) {
	f.Add([]byte("hello"), []byte{1, 2})
	f.Add([]byte("κόσμε"), []byte{1, 1, 1, 1, 1, 1})
	f.Add([]byte("a€😀"), []byte{2, 3})
	f.Add([]byte("\xed\xa0\x80"), []byte{1})
	f.Add([]byte("\xf4\x90\x80\x80"), []byte{1, 1})
	f.Add([]byte("\xe0\x80\xaf"), []byte{0, 2})
	f.Add([]byte("ok\xf0\x9f\x98"), []byte{3})
	f.Add([]byte("0123456789abcdef\xc2"), []byte{9})
	f.Fuzz(func(t *testing.T, data, shape []byte) {
		cuts := cutAt(len(data), shape)
		var v messages.UTF8
		for i := 1; i < len(cuts); i++ {
			got := v.Write(data[cuts[i-1]:cuts[i]])
			if want := validPrefix(data[:cuts[i]]); got != want {
				t.Fatalf("% x cut at %v: Write of piece %d = %v, want %v", data, cuts, i-1, got, want)
			}
		}
		if got, want := v.Complete(), utf8.Valid(data); got != want {
			t.Fatalf("% x cut at %v: Complete = %v, want %v", data, cuts, got, want)
		}
	})
}

// FuzzAssembler sends one message, cut into frames and each frame's payload
// cut into chunks, through an Assembler twice in a row, and checks the
// outcome against utf8.Valid and the limit: the message comes out whole, or
// the first broken rule is reported on the right frame and at the right
// step. The same frames also go through Push.
func FuzzAssembler(f *testing.F) {
	f.Add([]byte("hello, world"), []byte{3, 4}, uint8(0), uint16(0), true)
	f.Add([]byte("hello, world"), []byte{3, 4}, uint8(2), uint16(12), true)
	f.Add([]byte("hello, world"), []byte{3, 4}, uint8(1), uint16(11), false)
	f.Add([]byte("a€😀ä"), []byte{1, 1, 1, 1, 1, 1}, uint8(1), uint16(0), true)
	f.Add([]byte("ab\xed\xa0\x80cd"), []byte{3}, uint8(0), uint16(0), true)
	f.Add([]byte("ab\xed\xa0\x80cd"), []byte{3}, uint8(0), uint16(4), true)
	f.Add([]byte("ok\xe2\x82"), []byte{}, uint8(0), uint16(0), true)
	f.Add([]byte{}, []byte{0, 0}, uint8(0), uint16(1), true)
	f.Fuzz(func(t *testing.T, data, shape []byte, chunk uint8, limit uint16, text bool) {
		kind, first := messages.KindBinary, frames.OpBinary
		if text {
			kind, first = messages.KindText, frames.OpText
		}
		cuts := cutAt(len(data), shape)
		fs := make([]frames.Frame, 0, len(cuts)-1)
		for i := 1; i < len(cuts); i++ {
			op := frames.OpContinuation
			if i == 1 {
				op = first
			}
			fs = append(fs, frames.Frame{Op: op, Fin: i == len(cuts)-1, Payload: data[cuts[i-1]:cuts[i]]})
		}
		// frameOf returns the frame holding byte i of data.
		frameOf := func(i int) int {
			k := 0
			for cuts[k+1] <= i {
				k++
			}
			return k
		}

		// The expected outcome: the earliest of a frame that would take
		// the message over the limit, refused at its Begin, and a byte that
		// makes the text invalid, refused in the Chunk that carries it;
		// text cut inside a code point is refused at the last End.
		var want *failure
		if limit > 0 && len(data) > int(limit) {
			k := 0
			for cuts[k+1] <= int(limit) {
				k++
			}
			want = &failure{k, "begin", messages.ErrTooLarge}
		}
		if text {
			bad := firstBad(data)
			switch {
			case bad >= 0 && (want == nil || frameOf(bad) < want.frame):
				want = &failure{frameOf(bad), "chunk", messages.ErrInvalidUTF8}
			case bad < 0 && want == nil && !utf8.Valid(data):
				want = &failure{len(fs) - 1, "end", messages.ErrInvalidUTF8}
			}
		}
		var wantMsgs []msg
		if want == nil {
			wantMsgs = []msg{{kind, string(data)}}
		}

		a := &messages.Assembler{Limit: int64(limit)}
		for round := range 2 {
			got, fail := feed(t, a, fs, int(chunk%8))
			if !slices.Equal(got, wantMsgs) || !sameFailure(fail, want) {
				t.Fatalf("round %d, % x in frames cut at %v, chunks of %d, limit %d: got %v %v, want %v %v",
					round, data, cuts, chunk%8, limit, got, fail, wantMsgs, want)
			}
			if limit > 0 && a.Size() > int64(limit) {
				t.Fatalf("Size %d over the limit %d", a.Size(), limit)
			}
			if fail != nil {
				a.Reset()
			}
		}

		p := &messages.Assembler{Limit: int64(limit)}
		got, fail := push(p, fs)
		var wantPush *failure
		if want != nil {
			wantPush = &failure{want.frame, "", want.err}
		}
		if !slices.Equal(got, wantMsgs) || !sameFailure(fail, wantPush) {
			t.Fatalf("Push of % x in frames cut at %v, limit %d: got %v %v, want %v %v",
				data, cuts, limit, got, fail, wantMsgs, wantPush)
		}
	})
}

func sameFailure(a, b *failure) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
